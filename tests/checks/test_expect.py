"""The expectations of the checks turn answers into findings that name expected vs. seen."""

from __future__ import annotations

import json
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from conformance.checks import Finding, Inconclusive
from conformance.checks._expect import (
    answer_text,
    error_body_problem,
    error_codes_by_status,
    expect_allowed,
    expect_json_object,
    expect_no_server_error,
    expect_status,
)
from conformance.client import Exchange

SIGNED = {"X-App-Id": "consumer-a", "X-Signature": "***"}


def exchange(
    status: int | None,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    signed: bool = True,
    method: str = "GET",
    target: str = "/api/v1/node",
) -> Exchange:
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return Exchange(
        method=method,
        target=target,
        request_headers=SIGNED if signed else {},
        request_body=b"",
        status=status,
        headers=CaseInsensitiveDict(headers or {}),
        body=raw,
        elapsed_s=0.01,
        error=None if status is not None else "connection refused",
    )


def error(status: int, code: str, request_id: str = "req-12345678") -> Exchange:
    body = {"code": code, "message": "refused", "request_id": request_id}
    return exchange(status, body, headers={"X-Request-Id": request_id})


def test_a_matching_status_and_code_passes() -> None:
    ex = error(401, "UNAUTHENTICATED")
    assert expect_status(ex, 401, "UNAUTHENTICATED", what="a replayed nonce") is ex


def test_a_wrong_status_reads_as_a_finding_with_expected_seen_and_request() -> None:
    ex = exchange(200, {"node_id": "330000"}, method="POST", target="/api/v1/share/x/query")
    with pytest.raises(Finding) as caught:
        expect_status(ex, 401, "UNAUTHENTICATED", what="a replayed nonce")
    assert caught.value.reason == (
        "a replayed nonce was answered 200 OK; expected 401 UNAUTHENTICATED "
        "(POST /api/v1/share/x/query)"
    )


def test_another_error_code_is_a_finding() -> None:
    with pytest.raises(Finding, match="answered 403 SUBSCRIPTION_REQUIRED; expected 403 FORBIDDEN"):
        expect_status(error(403, "SUBSCRIPTION_REQUIRED"), 403, "FORBIDDEN", what="a probe")


def test_an_error_body_without_code_is_judged_by_status() -> None:
    ex = exchange(401, {"error": "nope"})
    assert expect_status(ex, 401, "UNAUTHENTICATED", what="a probe") is ex


def test_one_of_several_statuses_passes() -> None:
    assert expect_status(exchange(405, None), (200, 405), what="HEAD").status == 405


def test_no_answer_is_inconclusive() -> None:
    with pytest.raises(Inconclusive, match="connection refused"):
        expect_status(exchange(None), 200, what="a probe")


def test_a_429_is_inconclusive_unless_expected() -> None:
    with pytest.raises(Inconclusive, match="rate limited"):
        expect_status(error(429, "RATE_LIMITED"), 401, what="a probe")
    assert expect_status(error(429, "RATE_LIMITED"), 429, what="a burst").status == 429


def test_a_refused_signed_request_is_inconclusive_unless_credentials_are_under_test() -> None:
    refused = error(401, "UNAUTHENTICATED")
    with pytest.raises(Inconclusive, match="refused the tester's signed request"):
        expect_status(refused, 200, what="a catalog page")
    with pytest.raises(Finding, match="expected 200"):
        expect_status(refused, 200, what="an SM3 request", refused_is_finding=True)


def test_an_unsigned_request_refused_with_401_is_a_finding() -> None:
    ex = exchange(401, {"code": "UNAUTHENTICATED"}, signed=False)
    with pytest.raises(Finding, match="expected 404 NOT_FOUND"):
        expect_status(ex, 404, "NOT_FOUND", what="an unknown path")


@pytest.mark.parametrize("status", [403, 500, 502])
def test_allowed_refuses_403_and_5xx(status: int) -> None:
    with pytest.raises(Finding, match="expected an answer other than 401, 403 or 5xx"):
        expect_allowed(exchange(status, {"code": "X"}), what="GET /api/v1/stats by admin")


def test_allowed_leaves_a_refused_signature_undecided_but_not_a_missing_one() -> None:
    with pytest.raises(Inconclusive, match="refused the tester's signed request"):
        expect_allowed(error(401, "UNAUTHENTICATED"), what="GET /api/v1/stats by admin")
    with pytest.raises(Finding, match="answered 401"):
        expect_allowed(exchange(401, {}, signed=False), what="an unsigned request")


@pytest.mark.parametrize("status", [200, 400, 404])
def test_allowed_accepts_other_answers(status: int) -> None:
    assert expect_allowed(exchange(status, {}), what="a probe").status == status


def test_a_server_error_is_a_finding() -> None:
    with pytest.raises(Finding, match="never 5xx"):
        expect_no_server_error(error(500, "INTERNAL_ERROR"), what="a malformed body")
    assert expect_no_server_error(error(400, "INVALID_REQUEST"), what="x").status == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff{", "not UTF-8 JSON"),
        (b"[1]", "a JSON list"),
    ],
)
def test_a_body_that_is_no_object_is_a_finding(body: bytes, message: str) -> None:
    with pytest.raises(Finding, match=message):
        expect_json_object(exchange(200, body), what="the descriptor")


def test_answer_text_names_status_and_code_or_phrase() -> None:
    assert answer_text(error(404, "NOT_FOUND")) == "404 NOT_FOUND"
    assert answer_text(exchange(200, {})) == "200 OK"
    assert answer_text(exchange(None)) == "no answer (connection refused)"


def test_the_error_table_comes_from_the_vocabulary() -> None:
    table = error_codes_by_status()
    assert table[403] == {"FORBIDDEN", "SUBSCRIPTION_REQUIRED"}
    assert table[508] == {"LOOP_DETECTED"}


def test_a_well_formed_error_body_has_no_problem() -> None:
    assert error_body_problem(error(404, "NOT_FOUND")) is None


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        ({"error": "x", "detail": "y"}, {"X-Request-Id": "req-12345678"}, "`code` is missing"),
        (
            {"code": "FORBIDDEN", "message": "m", "request_id": "req-12345678"},
            {"X-Request-Id": "req-12345678"},
            "`code` is 'FORBIDDEN', expected NOT_FOUND",
        ),
        (
            {"code": "NOT_FOUND", "message": " ", "request_id": "req-12345678"},
            {"X-Request-Id": "req-12345678"},
            "`message` is missing or empty",
        ),
        (
            {"code": "NOT_FOUND", "message": "m", "request_id": "other-1234"},
            {"X-Request-Id": "req-12345678"},
            "differs from X-Request-Id",
        ),
        (b"<html>not found</html>", {}, "not UTF-8 JSON"),
    ],
)
def test_a_broken_error_body_is_described(body: Any, headers: dict[str, str], problem: str) -> None:
    found = error_body_problem(exchange(404, body, headers=headers))
    assert found is not None
    assert problem in found


def test_a_missing_request_id_header_is_left_to_api_02() -> None:
    body = {"code": "NOT_FOUND", "message": "m", "request_id": "req-12345678"}
    assert error_body_problem(exchange(404, body)) is None
