"""The ATS-1.0 message schemas, their loader and the OpenAPI description hold together.

The cases live in tests/schema_cases/<schema>.yaml: a valid ``base`` document and cases that
change it with JSON Patch operations (or give a whole ``document``), each valid or invalid with
the JSON path of the expected error. ``{$base: NAME}`` stands for the base of another file.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from typing import Any

import jsonpointer
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from conformance import schemas
from conformance.checks._catalog_walk import EntryRules
from conformance.data import data_dir

CASES_DIR = Path(__file__).parent / "schema_cases"
PROFILES = data_dir("profiles")
# Schemas that describe no ATS message: the shared definitions, and the profile files' schema
# (owned by the profile loader).
NOT_MESSAGES = {"common", "profile"}
MESSAGES = sorted(set(schemas.names()) - NOT_MESSAGES)
OPENAPI = PROFILES / "openapi.yaml"


@dataclass(frozen=True)
class Case:
    """One example document for one schema, valid or with its expected error path."""

    schema: str
    description: str
    document: Any
    error_path: str | None
    format_only: bool


def _case_files() -> dict[str, dict[str, Any]]:
    return {path.stem: yaml.safe_load(path.read_text("utf-8")) for path in CASES_DIR.glob("*.yaml")}


FILES = _case_files()


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$base"}:
            return _expand(copy.deepcopy(FILES[value["$base"]]["base"]))
        return {key: _expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item) for item in value]
    return value


def _patched(document: Any, operations: list[dict[str, Any]]) -> Any:
    # RFC 6902 add / replace / remove, enough for the cases.
    for operation in operations:
        parent_path, _, last = operation["path"].rpartition("/")
        parent = jsonpointer.resolve_pointer(document, parent_path)
        op = operation["op"]
        if op == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif op == "add" and isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), operation["value"])
        elif op in {"add", "replace"}:
            parent[int(last) if isinstance(parent, list) else last] = operation["value"]
        else:
            raise ValueError(f"unsupported patch operation {op!r}")
    return document


def _cases() -> Iterator[Case]:
    for data in (FILES[stem] for stem in sorted(FILES)):
        for raw in data["cases"]:
            if "document" in raw:
                document = _expand(raw["document"])
            else:
                document = _patched(_expand(copy.deepcopy(data["base"])), raw.get("patch", []))
            yield Case(
                schema=data["schema"],
                description=raw["description"],
                document=document,
                error_path=raw.get("error_path"),
                format_only=raw.get("format_only", False),
            )


CASES = list(_cases())
VALID = [case for case in CASES if case.error_path is None]
INVALID = [case for case in CASES if case.error_path is not None]


def _ids(cases: list[Case]) -> list[str]:
    return [f"{case.schema}: {case.description}" for case in cases]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


# --- the schema files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", schemas.names())
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(schemas.schema(name))


@pytest.mark.parametrize("name", sorted(set(schemas.names()) - {"profile"}))
def test_schema_id_follows_the_file_name(name: str) -> None:
    document = schemas.schema(name)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"{schemas.ID_BASE}{name}{schemas.SUFFIX}"


@pytest.mark.parametrize("name", MESSAGES)
def test_message_schema_allows_extra_members(name: str) -> None:
    # ATS allows extra members in every message: no object may close itself.
    for node in _walk(schemas.schema(name)):
        assert node.get("additionalProperties", True) is not False
        assert node.get("unevaluatedProperties", True) is not False


@pytest.mark.parametrize("name", schemas.names())
def test_every_ref_resolves(name: str) -> None:
    resolver = schemas.registry().resolver(base_uri=schemas.schema_id(name))
    for ref in _refs(schemas.schema(name)):
        assert resolver.lookup(ref).contents is not None, ref


@pytest.mark.parametrize("name", MESSAGES)
def test_every_message_schema_has_cases(name: str) -> None:
    assert name in FILES, f"tests/schema_cases/{name}.yaml is missing"
    kinds = {case.error_path is None for case in CASES if case.schema == name}
    assert kinds == {True, False}, "a schema needs both valid and invalid cases"


def test_every_schema_validator_compiles() -> None:
    for name in schemas.names():
        assert schemas.validator(name) is schemas.validator(name)


# --- the cases -------------------------------------------------------------------------------


def test_case_files_are_well_formed() -> None:
    descriptions: set[tuple[str, str]] = set()
    for stem, data in FILES.items():
        assert data["schema"] == stem, f"{stem}.yaml names schema {data['schema']!r}"
        for raw in data["cases"]:
            text = raw["description"]
            assert (stem, text) not in descriptions, f"{stem}: duplicate description {text!r}"
            descriptions.add((stem, text))
            assert re.search(r"\b(is|are) (valid|invalid)$", text), text
            assert "should" not in text, text
            assert "test that" not in text, text
            assert (raw.get("valid") is True) != ("error_path" in raw), text
            assert text.endswith(" invalid") == ("error_path" in raw), text


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_document_passes(case: Case) -> None:
    assert schemas.validation_errors(case.schema, case.document) == []
    assert schemas.is_valid(case.schema, case.document)


@pytest.mark.parametrize("case", INVALID, ids=_ids(INVALID))
def test_invalid_document_fails_at_its_path(case: Case) -> None:
    errors = schemas.validation_errors(case.schema, case.document)
    assert errors, "the document passed"
    assert any(line.startswith(f"{case.error_path}: ") for line in errors), errors
    assert not schemas.is_valid(case.schema, case.document)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_fast_path_agrees_with_the_reference_validator(case: Case) -> None:
    reference = schemas.validator(case.schema).is_valid(case.document)
    assert schemas.is_valid(case.schema, case.document) is reference


def _pointers(node: Any, prefix: str = "") -> Iterator[str]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _pointers(value, f"{prefix}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _pointers(value, f"{prefix}/{index}")


ENTRY = _expand({"$base": "catalog-entry"})
# Values near the boundaries the schema draws: enumeration members, codes, dates, numbers.
NEAR_VALID = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=101),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet="0123456789/-:TZ+ .CDBI", max_size=26),
    st.sampled_from(
        [
            "",
            "C",
            "D",
            "NAME",
            "BASE",
            "TOPIC",
            "NOT_SHARED",
            "UNCONDITIONAL",
            "DATABASE",
            "FILE",
            "201001/330001",
            "101001001/330001",
            "2017-02-30",
            "2017-08-15T09:30:00Z",
            "2017-08-15T09:30:00Z\n",
        ]
    ),
    st.lists(st.sampled_from(["", "xm", "101001/330001"]), max_size=4),
    st.just({}),
)


@settings(max_examples=300, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(sorted(set(_pointers(ENTRY)) - {""})), NEAR_VALID),
        min_size=1,
        max_size=3,
    )
)
def test_fast_path_agrees_on_mutated_entries(changes: list[tuple[str, Any]]) -> None:
    entry = copy.deepcopy(ENTRY)
    for pointer, value in changes:
        try:
            jsonpointer.set_pointer(entry, pointer, value)
        except jsonpointer.JsonPointerException:
            continue  # an earlier change replaced the container with a scalar
    reference = schemas.validator("catalog-entry").is_valid(entry)
    assert schemas.is_valid("catalog-entry", entry) is reference
    assert (schemas.validation_errors("catalog-entry", entry) == []) is reference


FORMAT_ONLY = [case for case in CASES if case.format_only]


@pytest.mark.parametrize("case", FORMAT_ONLY, ids=_ids(FORMAT_ONLY))
def test_format_only_violation_needs_the_format_checker(case: Case) -> None:
    without_formats = Draft202012Validator(schemas.schema(case.schema), registry=schemas.registry())
    assert without_formats.is_valid(case.document)
    assert not schemas.is_valid(case.schema, case.document)


def test_timestamp_pattern_catches_shapes_without_a_format_checker() -> None:
    without_formats = Draft202012Validator(schemas.schema("health"), registry=schemas.registry())
    for time_value in ("yesterday", "2017-08-15T09:30:00", "2017-08-15 09:30:00Z", 1700000000000):
        assert not without_formats.is_valid({"status": "UP", "time": time_value}), time_value


# --- the loader ------------------------------------------------------------------------------


def test_error_line_is_path_then_message() -> None:
    entry = _expand({"$base": "catalog-entry"})
    entry["items"][2]["data_type"] = "X"
    (line,) = schemas.validation_errors("catalog-entry", entry)
    assert line.startswith("$.items[2].data_type: 'X' is not one of ['C', 'N'"), line


def test_error_lines_are_single_and_bounded() -> None:
    errors = schemas.validation_errors("error", {"code": "x\n" * 1000, "message": ""})
    assert len(errors) == 3
    for line in errors:
        assert "\n" not in line
        assert len(line) <= schemas.MAX_LINE


def test_unknown_schema_name_suggests_the_close_one() -> None:
    with pytest.raises(schemas.UnknownSchema, match="did you mean 'catalog-entry'"):
        schemas.validator("catalog-entri")


def test_schema_returns_a_copy() -> None:
    schemas.schema("health")["required"].append("mutated")
    assert schemas.schema("health")["required"] == ["status", "time"]
    assert schemas.is_valid("health", {"status": "UP", "time": "2017-08-15T01:30:00Z"})


# --- the OpenAPI description -----------------------------------------------------------------


def _openapi() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text("utf-8"))


def test_openapi_is_a_valid_3_1_description() -> None:
    validate_openapi(_openapi(), base_uri=OPENAPI.resolve().as_uri())


def test_every_openapi_ref_resolves() -> None:
    spec = _openapi()
    for ref in set(_refs(spec)):
        target, _, fragment = ref.partition("#")
        document = json.loads((PROFILES / target).read_text("utf-8")) if target else spec
        assert jsonpointer.resolve_pointer(document, fragment) is not None, ref


def test_openapi_covers_every_ats_endpoint() -> None:
    operations = {
        (method.upper(), path)
        for path, item in _openapi()["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("GET", "/health"),
        ("GET", "/node"),
        ("GET", "/catalog/resources"),
        ("GET", "/catalog/resources/{classification_code}/{sequence}"),
        ("GET", "/catalog/resources/{resource_code}"),
        ("POST", "/share/{classification_code}/{sequence}/query"),
        ("GET", "/subscriptions"),
        ("POST", "/subscriptions"),
        ("GET", "/subscriptions/{subscription_id}"),
        ("DELETE", "/subscriptions/{subscription_id}"),
        ("POST", "/subscriptions/{subscription_id}/decision"),
        ("POST", "/cascade/catalog"),
        ("POST", "/cascade/sync"),
        ("GET", "/audit/events"),
        ("GET", "/stats"),
    }


def test_openapi_reaches_every_message_schema() -> None:
    def stems(refs: Iterator[str]) -> set[str]:
        return {
            Path(ref.partition("#")[0]).name.removesuffix(schemas.SUFFIX)
            for ref in refs
            if not ref.startswith("#")
        }

    reached: set[str] = set()
    frontier = stems(_refs(_openapi()))
    while frontier:
        reached |= frontier
        frontier = {s for name in frontier for s in stems(_refs(schemas.schema(name)))} - reached
    assert set(MESSAGES) <= reached, sorted(set(MESSAGES) - reached)


# The catalog walk checks the rules of catalog-entry.schema.json in code and the rest with the
# schema without them (its hot path, ATS-CAT-02): for every variant, the walk must accept exactly
# what the whole schema and the rules only code can check accept together.
ITEM_VARIANTS = [
    {"items": [{"name": "x", "data_type": data_type, **length, **sensitive, **mask}]}
    for data_type in ("C", "N")
    for length in ({}, {"length": 18})
    for sensitive in ({}, {"sensitive": False}, {"sensitive": True}, {"sensitive": 1})
    for mask in ({}, {"mask": "NAME"})
]
PATH_NAMES = ["类", "项", "目", "细目"]
CLASSIFICATION_VARIANTS = [
    {"resource_code": code, "classification": {"type": ctype, "path": PATH_NAMES[:n]}}
    for code in ("101001/000123", "201001001/000001", "301001/000001", "1/000001")
    for ctype in ("BASE", "TOPIC", "DEPARTMENT")
    for n in (2, 3, 4)
]
KIND_VARIANTS = [
    {
        "share": {"type": share, "condition": "依据《条例》", "method": "API"},
        "open": {"open": opened, "condition": ""},
        "format": {"kind": kind, "type": "json"},
        **({"items": []} if not items else {}),
    }
    for share in ("CONDITIONAL", "NOT_SHARED")
    for opened in (False, True)
    for kind in ("DATABASE", "SELF_DESCRIBING", "FILE")
    for items in (False, True)
]


@pytest.mark.parametrize(
    "variant",
    ITEM_VARIANTS + CLASSIFICATION_VARIANTS + KIND_VARIANTS,
    ids=lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False),
)
def test_the_walks_rules_decide_as_the_schema_does(variant: dict[str, Any]) -> None:
    entry = {**_expand({"$base": "catalog-entry"}), **variant}
    rules = EntryRules(today=date(9999, 12, 31), zone=UTC, name_max_chars=100)
    whole = not rules.coded_problems(entry) and schemas.is_valid("catalog-entry", entry)
    assert (rules.problems(entry) == []) == whole
