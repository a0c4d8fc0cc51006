"""The injection corpus as linted data, and the tester-side TLS helpers."""

from __future__ import annotations

import re

import pytest

from conformance import tls
from conformance.checks._payloads import corpus
from conformance.checks.security import InjectionCase, injection_cases
from conformance.profile import get_clause
from conformance.target import NodeSpec

CASES = injection_cases()


def test_corpus_descriptions_are_unique_facts() -> None:
    descriptions = [c.description for c in CASES]
    assert len(set(descriptions)) == len(descriptions)
    for text in descriptions:
        assert re.search(r"\b(is|are)\b", text), text
        assert not re.search(r"\bshould\b|test that", text), text


def test_corpus_covers_every_kind_of_the_clause() -> None:
    kinds = set(get_clause("ATS-SEC-04").params["payload_kinds"])
    assert {c.kind for c in CASES} == kinds
    assert str(corpus("injection")["harmless"]).isascii()


@pytest.mark.parametrize("case", CASES, ids=[c.description for c in CASES])
def test_payloads_go_on_the_wire_as_valid_request_targets(case: InjectionCase) -> None:
    for text in (case.in_path(), case.in_query()):
        assert text.isascii()
        assert not re.search(r"[\x00-\x20\x7f#?]", text), text


def test_oversized_cases_are_long() -> None:
    oversized = [c for c in CASES if c.kind == "oversized"]
    assert oversized
    assert all(len(c.value) >= 3000 for c in oversized)


@pytest.mark.parametrize(
    ("base_url", "http_url", "expected"),
    [
        ("https://node.example/gw", None, "http://node.example:443/gw"),
        ("https://127.0.0.1:8443", None, "http://127.0.0.1:8443"),
        ("https://127.0.0.1:8443", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_plain_http_address(base_url: str, http_url: str | None, expected: str) -> None:
    node = NodeSpec(base_url, "provincial", "330000", "100000", None, http_url)
    assert tls.plain_http_url(node) == expected


@pytest.mark.parametrize("name", list(tls.TLS_VERSIONS))
def test_the_local_openssl_answers_whether_it_can_offer(name: str) -> None:
    reason = tls.client_offers(name)
    assert reason is None or "cannot offer" in reason


def test_unknown_tls_version_is_named() -> None:
    with pytest.raises(ValueError, match="valid: TLSv1"):
        tls.tls_version("SSLv3")
