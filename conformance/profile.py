"""ATS-1.0 as data: the clause catalogue, the per-level profiles and the shared vocabulary.

The YAML files under `profiles/` are parsed with `yaml.safe_load`, validated against
`profiles/schemas/profile.schema.json`, cross-checked (clause ids, parameter names), and turned
into frozen dataclasses. Every problem is a `ProfileError` whose message is one line naming the
file, the place inside it and what is wrong, with the valid options where there are some.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from conformance.data import data_dir

CLAUSES_FILE = "clauses.yaml"
VOCABULARY_FILE = "vocabulary.yaml"
SCHEMA_FILE = "schemas/profile.schema.json"


class ProfileError(Exception):
    """Profile data is unusable: one line naming the file, the place inside it and the problem."""

    def __init__(self, file: str, place: str, problem: str) -> None:
        self.file = file
        self.place = place
        self.problem = problem
        text = f"{file}: {place}: {problem}" if place else f"{file}: {problem}"
        super().__init__(" ".join(text.split("\n")))


@dataclass(frozen=True)
class Text:
    """A text in Chinese and English; Chinese comes first wherever both are shown."""

    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


@dataclass(frozen=True)
class Clause:
    """One clause of ATS-1.0: what it requires, of which node levels, and its check."""

    id: str
    chapter: str
    level: str
    applies_to: tuple[str, ...]
    title: Text
    summary: Text
    check: str
    # A read-only mapping is not hashable; the clause id already identifies the clause.
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)


@dataclass(frozen=True)
class Profile:
    """The test plan for one node level: the clauses that run and those reported as SKIP."""

    name: str
    node_level: str
    clauses: tuple[Clause, ...]
    not_applicable: Mapping[str, str]
    source: str

    def clause(self, clause_id: str) -> Clause:
        """The clause of this profile with that id, its parameters tuned by the profile."""
        for clause in self.clauses:
            if clause.id == clause_id:
                return clause
        if clause_id in self.not_applicable:
            problem = f"not applicable in this profile: {self.not_applicable[clause_id]}"
            raise ProfileError(self.source, clause_id, problem)
        raise ProfileError(self.source, clause_id, _unknown("clause", clause_id, clause_ids()))

    def digest(self) -> str:
        """SHA-256 of the test plan this profile makes: every clause with its level, check and
        parameters, and the reasons of those not applicable. Two runs with the same digest
        applied the same plan, whatever the files looked like."""
        plan = {
            "name": self.name,
            "node_level": self.node_level,
            "clauses": [
                [c.id, c.level, list(c.applies_to), c.check, _thawed(c.params)]
                for c in self.clauses
            ],
            "not_applicable": dict(sorted(self.not_applicable.items())),
        }
        text = json.dumps(plan, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def plan(self) -> tuple[tuple[Clause, str | None], ...]:
        """Every ATS clause in the standard's order, with None (it runs) or its SKIP reason."""
        selected = {clause.id: clause for clause in self.clauses}
        return tuple(
            (selected.get(clause.id, clause), self.not_applicable.get(clause.id))
            for clause in load_clauses()
            if clause.id in selected or clause.id in self.not_applicable
        )


# --- loading ------------------------------------------------------------------------------


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thawed(item) for item in value]
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _display_name(path: Path) -> str:
    """The file as a user recognizes it: `profiles/x.yaml` for packaged data, else relative."""
    resolved = path.resolve()
    packaged = data_dir("profiles").resolve()
    if resolved.is_relative_to(packaged):
        return f"profiles/{resolved.relative_to(packaged).as_posix()}"
    try:
        return os.path.relpath(resolved)
    except ValueError:  # another drive on Windows
        return str(path)


def _read_yaml(path: Path) -> Any:
    name = _display_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(name, "", f"cannot read the file: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(name, place, f"invalid YAML: {problem}") from exc


@functools.cache
def _schema_registry() -> tuple[str, Registry]:
    path = data_dir("profiles") / SCHEMA_FILE
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError(_display_name(path), "", f"unreadable JSON Schema: {exc}") from exc
    resource = DRAFT202012.create_resource(schema)
    return schema["$id"], Registry().with_resource(schema["$id"], resource)


@functools.cache
def _validator(definition: str) -> Draft202012Validator:
    schema_id, registry = _schema_registry()
    return Draft202012Validator(
        {"$ref": f"{schema_id}#/$defs/{definition}"},
        registry=registry,
        format_checker=FormatChecker(),
    )


def _place(path: Iterable[str | int]) -> str:
    place = ""
    for part in path:
        place += f"[{part}]" if isinstance(part, int) else (f".{part}" if place else str(part))
    return place


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def _got(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _describe(error: ValidationError) -> tuple[str, str]:
    """The place and a plain-words problem for one schema violation."""
    path = list(error.absolute_path)
    value, kind, expected = error.instance, error.validator, error.validator_value
    if kind == "required":
        missing = [name for name in expected if name not in value]
        return _place([*path, missing[0]]), f"missing; required fields: {', '.join(expected)}"
    if kind == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = [name for name in value if name not in known]
        place = _place([*path, extra[0]])
        if known:
            return place, _unknown("field", extra[0], known)
        return place, f"unknown field {extra[0]!r}"
    if kind == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        return _place(path), f"must be {wanted}, got {_got(value)}"
    if kind == "enum":
        return _place(path), _unknown("value", value, [str(option) for option in expected])
    if kind == "const":
        return _place(path), f"must be {expected!r}, got {_got(value)}"
    if kind == "exclusiveMinimum":
        wanted = "a positive number" if expected == 0 else f"greater than {expected}"
        return _place(path), f"must be {wanted}, got {value!r}"
    if kind == "minimum":
        wanted = "a non-negative number" if expected == 0 else f"at least {expected}"
        return _place(path), f"must be {wanted}, got {value!r}"
    if kind == "maximum":
        return _place(path), f"must be at most {expected}, got {value!r}"
    if kind in ("minLength", "minItems", "minProperties") or (
        kind == "pattern" and expected == "\\S"
    ):
        return _place(path), "must not be empty"
    if kind == "pattern":
        return _place(path), f"must match {expected}, got {value!r}"
    if kind == "uniqueItems":
        return _place(path), "holds the same item twice"
    return _place(path), error.message


def _validate(document: Any, definition: str, name: str) -> None:
    if document is None:
        raise ProfileError(name, "", "the file is empty; expected a mapping")
    error = best_match(_validator(definition).iter_errors(document))
    if error is not None:
        place, problem = _describe(error)
        raise ProfileError(name, place or "(top level)", problem)


def _unknown(what: str, value: object, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value).upper(), [v.upper() for v in valid], n=1)
    if close:
        suggestion = next(v for v in valid if v.upper() == close[0])
        if len(valid) > 12:
            return f"unknown {what} {value!r}; did you mean {suggestion}?"
        return f"unknown {what} {value!r}; did you mean {suggestion}? valid: {', '.join(valid)}"
    if len(valid) > 12:
        return f"unknown {what} {value!r}"
    return f"unknown {what} {value!r}; valid: {', '.join(valid)}"


@functools.cache
def _clause_data() -> tuple[tuple[Clause, ...], Mapping[str, Text]]:
    path = data_dir("profiles") / CLAUSES_FILE
    name = _display_name(path)
    document = _read_yaml(path)
    _validate(document, "clauses_file", name)
    seen_ids: dict[str, int] = {}
    seen_checks: dict[str, int] = {}
    clauses = []
    for index, entry in enumerate(document["clauses"]):
        where = f"clauses[{index}]"
        clause_id = entry["id"]
        if clause_id in seen_ids:
            raise ProfileError(name, f"{where}.id", f"duplicate of clauses[{seen_ids[clause_id]}]")
        if entry["check"] in seen_checks:
            first = seen_checks[entry["check"]]
            raise ProfileError(name, f"{where}.check", f"same check as clauses[{first}]")
        chapter = clause_id.split("-")[1]
        if entry["chapter"] != chapter:
            raise ProfileError(name, f"{where}.chapter", f"must be {chapter!r} for {clause_id}")
        seen_ids[clause_id] = index
        seen_checks[entry["check"]] = index
        clauses.append(
            Clause(
                id=clause_id,
                chapter=entry["chapter"],
                level=entry["level"],
                applies_to=tuple(entry["applies_to"]),
                title=Text(**entry["title"]),
                summary=Text(**entry["summary"]),
                check=entry["check"],
                params=_freeze(entry.get("params", {})),
            )
        )
    chapters = MappingProxyType({key: Text(**text) for key, text in document["chapters"].items()})
    return tuple(clauses), chapters


def load_clauses() -> tuple[Clause, ...]:
    """Every clause of ATS-1.0, in the standard's order, with the standard's parameters."""
    return _clause_data()[0]


def chapters() -> Mapping[str, Text]:
    """The chapters of ATS-1.0 in the standard's order, each with its bilingual title."""
    return _clause_data()[1]


@functools.cache
def clause_ids() -> tuple[str, ...]:
    """The ids of every ATS-1.0 clause, in the standard's order."""
    return tuple(clause.id for clause in load_clauses())


@functools.cache
def _clauses_by_id() -> Mapping[str, Clause]:
    return MappingProxyType({clause.id: clause for clause in load_clauses()})


def get_clause(clause_id: str) -> Clause:
    """The clause with that id, with the standard's parameters."""
    try:
        return _clauses_by_id()[clause_id]
    except KeyError:
        problem = _unknown("clause id", clause_id, clause_ids())
        message = f"ATS-1.0 has no such clause: {problem}"
        raise ProfileError(f"profiles/{CLAUSES_FILE}", "", message) from None


@functools.cache
def load_vocabulary() -> Mapping[str, Any]:
    """The shared enumerations and tables of ATS-1.0 (vocabulary.yaml), read-only."""
    path = data_dir("profiles") / VOCABULARY_FILE
    document = _read_yaml(path)
    _validate(document, "vocabulary_file", _display_name(path))
    return _freeze(document)


def profile_names() -> tuple[str, ...]:
    """The packaged profiles: one per node level that can be certified."""
    levels = load_vocabulary()["node_levels"]
    return tuple(level for level, spec in levels.items() if spec["certifiable"])


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """A packaged profile by name (department, provincial, municipal) or a profile YAML file."""
    text = os.fspath(name_or_path)
    if text in profile_names():
        path = data_dir("profiles") / f"{text}.yaml"
    elif (
        isinstance(name_or_path, os.PathLike) or text.endswith((".yaml", ".yml")) or os.sep in text
    ):
        path = Path(text)
    else:
        problem = _unknown("profile", text, profile_names())
        raise ProfileError(text, "", f"{problem} (or give the path of a profile YAML file)")
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise ProfileError(_display_name(path), "", f"cannot read the file: {exc}") from exc
    return _load_profile_file(path.resolve(), stamp)


@functools.cache
def _load_profile_file(path: Path, _mtime_ns: int) -> Profile:
    # The modification time is part of the cache key, so an edited file is read again.
    name = _display_name(path)
    document = _read_yaml(path)
    _validate(document, "profile_file", name)
    level = document["node_level"]
    by_id = _clauses_by_id()

    def known(place: str, clause_id: str) -> Clause:
        if clause_id not in by_id:
            raise ProfileError(name, place, _unknown("clause id", clause_id, clause_ids()))
        return by_id[clause_id]

    not_applicable: dict[str, str] = {}
    for clause_id, reason in document.get("not_applicable", {}).items():
        known(f"not_applicable.{clause_id}", clause_id)
        not_applicable[clause_id] = reason.strip()

    if "clauses" in document:
        selected = set()
        for index, clause_id in enumerate(document["clauses"]):
            place = f"clauses[{index}]"
            clause = known(place, clause_id)
            if clause_id in not_applicable:
                problem = f"{clause_id} is also listed under not_applicable"
                raise ProfileError(name, place, problem)
            if level not in clause.applies_to:
                problem = (
                    f"{clause_id} does not apply to {level} nodes (only to "
                    f"{', '.join(clause.applies_to)}); list it under not_applicable with a reason"
                )
                raise ProfileError(name, place, problem)
            selected.add(clause_id)
    else:
        selected = {
            clause.id
            for clause in load_clauses()
            if level in clause.applies_to and clause.id not in not_applicable
        }

    # Not applicable is not passed: every clause either runs or is reported with its reason.
    for clause in load_clauses():
        if clause.id in selected or clause.id in not_applicable:
            continue
        if level not in clause.applies_to:
            problem = f"{clause.id} does not apply to {level} nodes; list it here with a reason"
            raise ProfileError(name, "not_applicable", problem)
        problem = f"{clause.id} is neither selected nor listed under not_applicable with a reason"
        raise ProfileError(name, "clauses", problem)

    overrides: dict[str, Mapping[str, Any]] = {}
    for clause_id, override in document.get("overrides", {}).items():
        place = f"overrides.{clause_id}"
        clause = known(place, clause_id)
        if clause_id not in selected:
            raise ProfileError(name, place, "the clause does not run in this profile")
        for key, value in override["params"].items():
            _check_override(name, f"{place}.params.{key}", clause, key, value)
        overrides[clause_id] = {**clause.params, **override["params"]}

    clauses = tuple(
        replace(clause, params=_freeze(overrides[clause.id])) if clause.id in overrides else clause
        for clause in load_clauses()
        if clause.id in selected
    )
    return Profile(
        name=document["name"],
        node_level=level,
        clauses=clauses,
        not_applicable=MappingProxyType(not_applicable),
        source=name,
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    return "array"


def _check_override(name: str, place: str, clause: Clause, key: str, value: Any) -> None:
    """An override names a parameter the clause has and keeps its kind of value."""
    if key not in clause.params:
        valid = list(clause.params)
        if not valid:
            raise ProfileError(name, place, f"{clause.id} takes no parameters")
        raise ProfileError(name, place, _unknown("parameter", key, valid))
    if clause.params[key] is None:
        # A null default (a seed drawn per run) takes any value the schema allows it.
        return
    expected = _json_kind(clause.params[key])
    if _json_kind(value) != expected:
        wanted = _TYPE_NAMES.get(expected, expected)
        raise ProfileError(name, place, f"must be {wanted} like the default, got {_got(value)}")


# --- rendering for `conformance profiles list | show` ---------------------------------------


def _width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` columns, breaking between words or between wide characters."""
    # A run of narrow non-space characters is a word; each wide character stands alone.
    tokens = re.findall(r"\s+|[^\s\u1100-\uffff]+|.", text)
    lines: list[str] = []
    line = ""
    for token in tokens:
        if line and _width(line + token.rstrip()) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(_width(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(_pad(cell, widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def _applies(clause: Clause) -> str:
    if set(clause.applies_to) == set(profile_names()):
        return "all"
    return ", ".join(clause.applies_to)


def _level_counts(clauses: Iterable[Clause]) -> str:
    counts = {"MUST": 0, "SHOULD": 0, "MAY": 0}
    for clause in clauses:
        counts[clause.level] += 1
    return ", ".join(f"{n} {level}" for level, n in counts.items() if n)


def render_clause_list(profile: str | None) -> str:
    """The clause table of ATS-1.0, or of one profile, with a last line of counts."""
    if profile is None:
        clauses = load_clauses()
        rows: list[tuple[str, ...]] = [("ID", "LEVEL", "CHAPTER", "APPLIES TO", "标题", "TITLE")]
        rows += [(c.id, c.level, c.chapter, _applies(c), c.title.zh, c.title.en) for c in clauses]
        summary = (
            f"ATS-1.0: {len(clauses)} clauses in {len(chapters())} chapters "
            f"({_level_counts(clauses)})"
        )
        return "\n".join([*_table(rows), summary])

    loaded = load_profile(profile)
    plan = loaded.plan()
    plan_rows: list[tuple[str, ...]] = [
        ("ID", "LEVEL", "CHAPTER", "APPLIES TO", "PLAN", "标题", "TITLE")
    ]
    plan_rows += [
        (
            c.id,
            c.level,
            c.chapter,
            _applies(c),
            "run" if reason is None else "SKIP",
            c.title.zh,
            c.title.en,
        )
        for c, reason in plan
    ]
    lines = _table(plan_rows)
    skipped = [(c, reason) for c, reason in plan if reason is not None]
    if skipped:
        lines.append("not applicable (reported as SKIP):")
        lines += [f"  {c.id}  {reason}" for c, reason in skipped]
    lines.append(
        f"profile {loaded.name} ({loaded.node_level}, {loaded.source}): {len(plan)} clauses, "
        f"{len(loaded.clauses)} run ({_level_counts(loaded.clauses)}), "
        f"{len(skipped)} not applicable"
    )
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, tuple | list):
        return ", ".join(_value(item) for item in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {_value(item)}" for key, item in value.items())
    return json.dumps(value)


def render_clause(clause_id: str) -> str:
    """One clause in full: bilingual title and summary, levels, check, parameters, profiles."""
    clause = get_clause(clause_id)
    chapter = chapters()[clause.chapter]
    label_width = 17
    indent = " " * label_width

    def block(label: str, lines: Sequence[str]) -> list[str]:
        first, *rest = lines or [""]
        return [_pad(label, label_width) + first, *(indent + line for line in rest)]

    out = [f"{clause.id}  {clause.level}  {clause.chapter} {chapter.zh} / {chapter.en}"]
    out += block("标题 title", [clause.title.zh, clause.title.en])
    width = 100 - label_width
    out += block(
        "要求 summary", [*_wrap(clause.summary.zh, width), *_wrap(clause.summary.en, width)]
    )
    out += block("适用 applies to", [", ".join(clause.applies_to)])
    out += block("检查 check", [clause.check])
    params = [f"{key}: {_value(value)}" for key, value in clause.params.items()]
    out += block("参数 params", params or ["(none)"])
    plans = []
    for name in profile_names():
        profile = load_profile(name)
        if clause.id in profile.not_applicable:
            plans.append(f"{name}: SKIP, {profile.not_applicable[clause.id]}")
            continue
        if all(c.id != clause.id for c in profile.clauses):
            continue
        tuned = profile.clause(clause.id).params
        changed = [
            f"{key}: {_value(value)}"
            for key, value in tuned.items()
            if value != clause.params.get(key)
        ]
        plans.append(f"{name}: run" + (f" ({'; '.join(changed)})" if changed else ""))
    out += block("配置 profiles", plans)
    return "\n".join(out)
