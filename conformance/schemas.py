"""The JSON Schemas of the ATS-1.0 messages, compiled once and resolved offline.

A schema is named by the stem of its file under ``profiles/schemas/`` (``"catalog-entry"`` for
``catalog-entry.schema.json``). Every file is registered under its ``$id`` in one
``referencing.Registry``, so the cross-file ``$ref``s resolve without any network access.
Validators check formats (``date-time``, ``date``) with the ``format-nongpl`` checkers.

``validator`` is the authority: a ``jsonschema`` draft 2020-12 validator that explains every
error. It walks a catalog entry at about 1500 per second, too slow for a catalog walk, so
``is_valid`` and the first step of ``validation_errors`` run the same schema compiled to Python
by ``fastjsonschema`` (about 20 000 per second), with the same format checkers; only an invalid
document goes through ``validator`` for its error lines.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conformance.data import data_dir

SUFFIX = ".schema.json"
# Files without their own $id are registered under this base, as their $id would be.
ID_BASE = "https://ats.example/schemas/"
# One error line stays readable in a report even when the offending value is large.
MAX_LINE = 300
# An unescaped "$" in a pattern.
_DOLLAR = re.compile(r"(?<!\\)\$")


class UnknownSchema(LookupError):
    """A schema name names no file under profiles/schemas."""


def schema_dir() -> Path:
    """The folder holding the ``*.schema.json`` files."""
    return data_dir("profiles") / "schemas"


@functools.cache
def _documents() -> Mapping[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(schema_dir().glob(f"*{SUFFIX}")):
        documents[path.name.removesuffix(SUFFIX)] = json.loads(path.read_text(encoding="utf-8"))
    return documents


def names() -> tuple[str, ...]:
    """The names of every schema, sorted."""
    return tuple(_documents())


def schema_id(name: str) -> str:
    """The ``$id`` a schema is registered under."""
    document = _document(name)
    return str(document.get("$id", f"{ID_BASE}{name}{SUFFIX}"))


def _document(name: str) -> dict[str, Any]:
    documents = _documents()
    if name not in documents:
        close = difflib.get_close_matches(name, documents, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(documents)}"
        raise UnknownSchema(f"no schema named {name!r} in {schema_dir().name}/{hint}")
    return documents[name]


@functools.cache
def registry() -> Registry[Any]:
    """A registry of every schema file under its ``$id``; it never retrieves anything."""
    resources = [
        (schema_id(name), Resource.from_contents(document, default_specification=DRAFT202012))
        for name, document in _documents().items()
    ]
    return Registry().with_resources(resources).crawl()


def schema(name: str) -> dict[str, Any]:
    """A copy of the schema named ``name`` (a file stem such as ``"catalog-entry"``)."""
    return copy.deepcopy(_document(name))


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262 regular expressions, whose "$" ends the string; Python's
    # also matches before a final newline, so "101001/330001\n" would pass as a resource code.
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


def _pattern(
    checker: Validator, pattern: str, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@functools.cache
def validator(name: str, lean: bool = False) -> Validator:
    """The draft 2020-12 validator, with format checking, of the schema named ``name`` (``lean``:
    without its rules, see ``is_valid_without_rules``).

    It validates as ``Draft202012Validator`` does, except that a ``pattern``'s ``$`` ends the
    string, as in ECMA-262.
    """
    return _Validator(
        _lean(_document(name)) if lean else _document(name),
        registry=registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


@functools.cache
def _compiled(name: str, lean: bool = False) -> Callable[[object], object]:
    by_id = {schema_id(other): schema(other) for other in names()}
    checkers = Draft202012Validator.FORMAT_CHECKER.checkers
    formats = {fmt: functools.partial(_conforms, fmt) for fmt in checkers}
    # The handler serves every $id from the packaged files: nothing is ever fetched.
    handler = functools.partial(_by_id, by_id)
    root = _lean(schema(name)) if lean else schema(name)
    return fastjsonschema.compile(
        root,
        handlers={"https": handler, "http": handler, "urn": handler},
        formats=formats,
        use_default=False,
    )


def _lean(root: Mapping[str, Any]) -> dict[str, Any]:
    """``root`` without its rules: the ``allOf`` of each of its ``$defs``, and the references
    of its own ``allOf`` to those ``$defs`` (references to other schemas stay)."""
    defs = {
        key: {k: v for k, v in definition.items() if k != "allOf"}
        for key, definition in root.get("$defs", {}).items()
    }
    kept = [part for part in root.get("allOf", []) if not part.get("$ref", "").startswith("#/")]
    lean = {k: v for k, v in root.items() if k not in ("$defs", "allOf")}
    return {**lean, **({"$defs": defs} if defs else {}), **({"allOf": kept} if kept else {})}


def _by_id(by_id: Mapping[str, dict[str, Any]], uri: str) -> dict[str, Any]:
    if uri not in by_id:
        raise UnknownSchema(f"$ref to {uri!r} names no schema in {schema_dir().name}/")
    return by_id[uri]


def _conforms(fmt: str, value: object) -> bool:
    return Draft202012Validator.FORMAT_CHECKER.conforms(value, fmt)


def is_valid(name: str, document: object) -> bool:
    """Whether ``document`` is valid against schema ``name`` (the fast path)."""
    try:
        _compiled(name)(document)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def is_valid_without_rules(name: str, document: object) -> bool:
    """Whether ``document`` is valid against schema ``name`` without its rules: the ``allOf``
    of its ``$defs`` and its own ``allOf`` references to them. For a caller that checks those
    rules in code, faster: each ``if`` a valid document does not meet costs the compiled
    validator an exception."""
    try:
        _compiled(name, lean=True)(document)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def validation_errors(name: str, document: object, *, lean: bool = False) -> list[str]:
    """The errors of ``document`` against schema ``name`` (``lean``: without its rules), one
    line each: JSON path, message.

    An empty list means the document is valid. Lines come sorted by path, so a report is stable.
    """
    if (is_valid_without_rules if lean else is_valid)(name, document):
        return []
    errors = validator(name, lean).iter_errors(document)
    return sorted(_one_line(f"{error.json_path}: {error.message}") for error in errors)


def _one_line(line: str) -> str:
    line = line.replace("\n", " ")
    if len(line) > MAX_LINE:
        return line[: MAX_LINE - 1] + "…"
    return line
