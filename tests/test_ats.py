"""conformance.ats: the standard's vocabulary agrees with profiles/vocabulary.yaml and ATS §1."""

from __future__ import annotations

import pytest

from conformance import ats
from conformance.profile import load_vocabulary

# ATS §1, the error table as the standard prints it (status, code).
ATS_1_TABLE = [
    (400, "INVALID_REQUEST"),
    (401, "UNAUTHENTICATED"),
    (403, "FORBIDDEN"),
    (403, "SUBSCRIPTION_REQUIRED"),
    (404, "NOT_FOUND"),
    (405, "METHOD_NOT_ALLOWED"),
    (409, "CONFLICT"),
    (413, "PAYLOAD_TOO_LARGE"),
    (429, "RATE_LIMITED"),
    (500, "INTERNAL_ERROR"),
    (502, "UPSTREAM_UNAVAILABLE"),
    (503, "UNAVAILABLE"),
    (504, "UPSTREAM_TIMEOUT"),
    (508, "LOOP_DETECTED"),
]
PATHS = [
    ats.HEALTH,
    ats.NODE,
    ats.CATALOG,
    ats.SUBSCRIPTIONS,
    ats.CASCADE_PUSH,
    ats.CASCADE_SYNC,
    ats.AUDIT_EVENTS,
    ats.STATS,
]


def _endpoint_paths() -> set[str]:
    return {str(e["path"]) for e in load_vocabulary()["endpoints"]}


@pytest.mark.parametrize("path", PATHS)
def test_every_fixed_path_is_an_endpoint_of_the_vocabulary(path: str) -> None:
    assert path in _endpoint_paths()


def test_every_endpoint_of_the_vocabulary_has_a_name_or_builder() -> None:
    built = {
        ats.catalog_entry_path("{resource_code}"),
        ats.share_query_path("{resource_code}"),
        ats.subscription_path("{subscription_id}"),
        ats.subscription_path("{subscription_id}") + "/decision",
    }
    assert _endpoint_paths() == set(PATHS) | built


def test_every_path_lives_under_api_v1_and_the_unknown_one_is_no_endpoint() -> None:
    # ATS-API-01; ATS-API-04 needs a path the standard does not define.
    assert all(p.startswith(ats.API_PREFIX + "/") for p in [*PATHS, ats.UNKNOWN_PATH])
    assert ats.UNKNOWN_PATH not in _endpoint_paths()


@pytest.mark.parametrize(
    ("code", "path"),
    [
        ("101001/330100", "/api/v1/share/101001/330100/query"),
        ("abc", "/api/v1/share/abc/query"),
    ],
)
def test_share_query_path_keeps_the_slash_and_reads_back(code: str, path: str) -> None:
    assert ats.share_query_path(code) == path
    assert ats.share_code(path) == code


def test_share_code_reads_an_encoded_slash_and_refuses_other_paths() -> None:
    assert ats.share_code("/api/v1/share/101001%2F330100/query") == "101001/330100"
    assert ats.share_code("/api/v1/share/101001%2f330100/query") == "101001/330100"
    for other in ("/api/v1/share//query", "/api/v1/share/query", ats.NODE, "/share/x/query"):
        assert ats.share_code(other) is None


def test_the_error_table_is_that_of_ats_1() -> None:
    assert sorted((s, c) for c, s in ats.error_codes().items()) == sorted(ATS_1_TABLE)
    assert ats.codes_by_status()[403] == {"FORBIDDEN", "SUBSCRIPTION_REQUIRED"}
    assert ats.status_of("LOOP_DETECTED") == 508
    with pytest.raises(KeyError):
        ats.status_of("TEAPOT")


def test_the_default_code_of_a_status_is_the_first_the_table_lists() -> None:
    first: dict[int, str] = {}
    for status, code in ATS_1_TABLE:
        first.setdefault(status, code)
    assert {s: ats.default_code(s) for s in first} == first
    assert ats.default_code(418) is None


def test_headers_and_freshness_rules() -> None:
    assert list(ats.CASCADE_HEADERS) == list(load_vocabulary()["cascade_headers"])
    assert ats.SIGNATURE_HEADERS == (
        "X-App-Id",
        "X-Timestamp",
        "X-Nonce",
        "X-Signature-Method",
        "X-Signature",
    )
    # ATS-AUTH-04 and ATS-AUTH-05.
    assert (ats.TIMESTAMP_WINDOW_S, ats.NONCE_MEMORY_S) == (300, 600)


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("timestamp_ms", "1700000000000", ["170000000000", "1700000000000\n", "17000000000001"]),
        ("nonce", "a" * 16, ["a" * 15, "a" * 65, "abc-def-ghi-jkl-m", "ａ" * 16]),
        ("app_id", "consumer.app_1-x", ["", "a b", "x" * 65]),
    ],
)
def test_patterns_are_the_vocabularys_whole_ascii_shapes(
    name: str, good: str, bad: list[str]
) -> None:
    pattern = ats.pattern(name)
    assert pattern.fullmatch(good)
    assert not [b for b in bad if pattern.fullmatch(b)]
