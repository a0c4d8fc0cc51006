"""The request corpora are well-formed data, and the generated inputs are what they claim."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from requests.structures import CaseInsensitiveDict

from conformance.checks._payloads import (
    GeneratedCase,
    corpus,
    invalid_list_queries,
    invalid_query_bodies,
    malformed_json_bodies,
    substitute,
)
from conformance.checks.api import _run_generated
from conformance.client import Exchange
from conformance.profile import load_vocabulary

CORPORA = ("malformed-requests", "auth-requests", "internals-leaks", "role-table")
FEW = settings(max_examples=60, deadline=None, database=None)


def _described(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "description" in node:
            yield str(node["description"])
        for value in node.values():
            yield from _described(value)
    elif isinstance(node, list):
        for value in node:
            yield from _described(value)


@pytest.mark.parametrize("name", CORPORA)
def test_descriptions_are_unique_statements(name: str) -> None:
    descriptions = list(_described(corpus(name)))
    assert descriptions, f"{name} has no described case"
    repeated = [d for d, n in Counter(descriptions).items() if n > 1]
    assert not repeated, repeated
    for text in descriptions:
        assert re.search(r"\b(is|are)\b", text), f"{text!r} is not in the 'X is Y' style"
        assert not re.search(r"\bshould\b|\btest that\b", text, re.IGNORECASE), text
        assert text == text.strip(), text
        assert not text.endswith("."), text


def test_leak_patterns_compile() -> None:
    leaks = corpus("internals-leaks")
    for case in leaks["body_patterns"]:
        re.compile(case["pattern"])
    re.compile(leaks["server_version_pattern"])


@pytest.mark.parametrize(
    ("text", "leaks"),
    [
        ('Traceback (most recent call last):\n  File "/srv/app/main.py", line 3', True),
        ('sqlite3.OperationalError: near "x": syntax error', True),
        ("json.decoder.JSONDecodeError at /api", True),
        ("SELECT code FROM catalog WHERE x = 1", True),
        ('{"code": "INVALID_REQUEST", "message": "page 必须是正整数 / page must be ≥ 1"}', False),
        ('{"code": "NOT_FOUND", "message": "no endpoint at /api/v1/ats-no-such-endpoint"}', False),
        ('{"code": "INTERNAL_ERROR", "message": "internal error", "request_id": "a-1"}', False),
    ],
)
def test_leak_patterns_tell_internals_from_ats_errors(text: str, leaks: bool) -> None:
    patterns = [re.compile(c["pattern"]) for c in corpus("internals-leaks")["body_patterns"]]
    assert any(p.search(text) for p in patterns) is leaks


def test_malformed_query_bodies_are_not_valid_query_bodies() -> None:
    for case in corpus("malformed-requests")["invalid_query_bodies"]:
        raw = bytes.fromhex(case["body_hex"]) if "body_hex" in case else case["body"].encode()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        assert not (
            isinstance(body, dict)
            and isinstance(body.get("fields", []), list)
            and all(isinstance(f, str) for f in body.get("fields", []))
            and isinstance(body.get("filter", {}), dict)
            and all(
                type(body.get(k, 1)) is int and 1 <= body.get(k, 1) <= (100 if k == "size" else 9e9)
                for k in ("page", "size")
            )
        ), case["description"]


def test_role_table_covers_the_vocabulary_endpoints() -> None:
    table = corpus("role-table")
    vocabulary = load_vocabulary()
    roles_by_endpoint = {
        (e["method"], e["path"]): set(e["roles"])
        for e in vocabulary["endpoints"]
        if e["authenticated"]
    }
    probed = {}
    for endpoint in table["endpoints"]:
        path = re.sub(r"/ats-no-such-subscription", "/{subscription_id}", endpoint["path"])
        path = path.replace("{code}", "{resource_code}").replace(
            "{unconditional}", "{resource_code}"
        )
        probed[(endpoint["method"], path)] = endpoint
        assert set(endpoint["allowed"]) | set(endpoint["forbidden"]) == set(table["roles"])
        assert not set(endpoint["allowed"]) & set(endpoint["forbidden"])
        if endpoint["forbidden"]:
            assert "forbidden_probe" in endpoint, endpoint["description"]
    assert set(probed) == set(roles_by_endpoint)
    for key, endpoint in probed.items():
        assert set(endpoint["allowed"]) == roles_by_endpoint[key], key


def test_substitute_fills_only_named_placeholders() -> None:
    text = '/api/v1/share/{unconditional}/query {"a": {}}'
    assert substitute(text, unconditional="101001/000001") == (
        '/api/v1/share/101001/000001/query {"a": {}}'
    )


@FEW
@given(malformed_json_bodies())
def test_malformed_bodies_are_never_json(case: GeneratedCase) -> None:
    assert isinstance(case.payload, bytes)
    try:
        json.loads(case.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return
    pytest.fail(f"{case.payload!r} is JSON")


@FEW
@given(invalid_query_bodies(100))
def test_invalid_query_bodies_have_one_member_of_the_wrong_type_or_range(
    case: GeneratedCase,
) -> None:
    body = json.loads(case.payload)
    assert case.expected_status == 400
    ((member, value),) = body.items()
    if member == "fields":
        assert not (isinstance(value, list) and all(isinstance(v, str) for v in value))
    elif member == "filter":
        assert not isinstance(value, dict)
    else:
        upper = 100 if member == "size" else float("inf")
        assert type(value) is not int or not 1 <= value <= upper


@FEW
@given(invalid_list_queries(100))
def test_list_queries_are_invalid_or_carry_only_unknown_extras(case: GeneratedCase) -> None:
    pairs = parse_qsl(str(case.payload), keep_blank_values=True)
    names = Counter(name for name, _ in pairs)
    if case.expected_status == 200:
        assert all(n.startswith("ats_") for n in names if n != "size")
        return
    repeated = [n for n, count in names.items() if count > 1]
    bad = [
        (n, v)
        for n, v in pairs
        if n in ("page", "size")
        and not (v.isascii() and v.isdigit() and 1 <= int(v) <= (100 if n == "size" else 10**30))
    ]
    assert repeated or bad, case.payload


def _collect(seed_value: int) -> list[str | bytes]:
    sent: list[str | bytes] = []

    def send(case: GeneratedCase) -> Exchange:
        sent.append(case.payload)
        return Exchange("GET", "/", {}, b"", 400, CaseInsensitiveDict(), b"{}", 0.0)

    findings: list[str] = []
    _run_generated(
        None,  # type: ignore[arg-type]  # the context is not used by the generation itself
        invalid_list_queries(100),
        send,
        examples=15,
        seed_value=seed_value,
        allowed_5xx=frozenset(),
        findings=findings,
    )
    return sent


def test_generated_cases_are_reproducible_from_the_seed() -> None:
    first, again, other = _collect(7), _collect(7), _collect(8)
    assert first == again
    assert first != other
    assert 0 < len(first) <= 15


@pytest.mark.parametrize(
    ("server", "reveals"),
    [
        ("nginx/1.25.3", True),
        ("Apache/2.4", True),
        ("nginx/1", True),
        ("uvicorn 0.30.1", True),
        ("Microsoft-IIS/10.0", True),
        ("node-330000", False),
        ("nginx", False),
        ("ATS gateway", False),
    ],
)
def test_a_server_header_reveals_a_version_only_when_it_carries_one(
    server: str, reveals: bool
) -> None:
    # ATS-API-07 forbids version numbers in Server, not digits: a node id is no version.
    pattern = re.compile(corpus("internals-leaks")["server_version_pattern"])
    assert bool(pattern.search(server)) is reveals
