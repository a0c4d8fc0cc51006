"""Expectations on exchanges: each turns an answer into a finding that names expected vs. seen.

A reason reads like a finding a vendor can act on, e.g. ``a replayed nonce was answered 200 OK;
expected 401 UNAUTHENTICATED (POST /api/v1/share/101001/000001/query)``. An answer the check
cannot judge — no answer at all, or a 429 where another status was expected — is inconclusive,
never a pass and never a failure of the clause under test.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from http import HTTPStatus
from typing import Any

from conformance.ats import codes_by_status as error_codes_by_status
from conformance.checks import Finding, Inconclusive
from conformance.client import Exchange

__all__ = [
    "answer_text",
    "error_body_problem",
    "error_codes_by_status",
    "expect_allowed",
    "expect_json_object",
    "expect_no_server_error",
    "expect_status",
    "request_text",
]


_TARGET_SHOWN = 120


def request_text(ex: Exchange) -> str:
    """The request of an exchange as method and target, the target cut for a one-line reason."""
    target = ex.target if len(ex.target) <= _TARGET_SHOWN else ex.target[:_TARGET_SHOWN] + "…"
    return f"{ex.method} {target}"


def answer_text(ex: Exchange) -> str:
    """The answer as status and error code (or reason phrase), e.g. ``401 UNAUTHENTICATED``."""
    if ex.status is None:
        return f"no answer ({ex.error or 'transport failure'})"
    code = ex.error_code
    if code:
        return f"{ex.status} {code}"
    try:
        return f"{ex.status} {HTTPStatus(ex.status).phrase}"
    except ValueError:
        return str(ex.status)


def _expected_text(statuses: Collection[int], code: str | None) -> str:
    shown = " or ".join(str(s) for s in sorted(statuses))
    return f"{shown} {code}" if code else shown


def _signed(ex: Exchange) -> bool:
    return any(name.lower() == "x-signature" for name in ex.request_headers)


def _judgeable(ex: Exchange, statuses: Collection[int], refused_is_finding: bool) -> int:
    """The status of an answer that can be judged; Inconclusive when it says nothing about the
    clause under test."""
    if ex.status is None:
        raise Inconclusive(f"{request_text(ex)} got {answer_text(ex)}")
    # ATS-SEC-03: a 429 is the rate limit speaking, not the clause under test.
    if ex.status == 429 and 429 not in statuses:
        raise Inconclusive(
            f"{request_text(ex)} was rate limited (429); the clause could not be judged"
        )
    # A correctly signed request refused with 401 says the tester's credentials do not work
    # (chapter 3 decides that), not whether the clause under test holds.
    if ex.status == 401 and 401 not in statuses and _signed(ex) and not refused_is_finding:
        raise Inconclusive(
            f"{request_text(ex)} was answered {answer_text(ex)}: the node refused the tester's "
            f"signed request, so the clause could not be judged"
        )
    return ex.status


def expect_status(
    ex: Exchange,
    status: int | Collection[int],
    code: str | None = None,
    *,
    what: str,
    refused_is_finding: bool = False,
) -> Exchange:
    """The answer has the expected status (one of them) and, when given, the error code.

    ``what`` names the request in the reason: ``a replayed nonce`` gives ``a replayed nonce was
    answered 200 OK; expected 401 UNAUTHENTICATED (GET /api/v1/node)``. An error body without
    a ``code`` member is judged by its status alone (ATS-API-03 judges its shape). A 401 to a signed
    request is inconclusive unless ``refused_is_finding``: the clause under test decides before
    authentication (404, 405, 413) or is about authentication itself.
    """
    statuses = (status,) if isinstance(status, int) else tuple(status)
    _judgeable(ex, statuses, refused_is_finding)
    # The shape of error bodies is ATS-API-03's finding: a body without a `code` is judged by
    # its status here, a body naming another code is a finding of the clause under test.
    if ex.status not in statuses or (code is not None and ex.error_code not in (None, code)):
        raise Finding(
            f"{what} was answered {answer_text(ex)}; expected "
            f"{_expected_text(statuses, code)} ({request_text(ex)})"
        )
    return ex


def expect_allowed(ex: Exchange, *, what: str) -> Exchange:
    """The answer neither refuses the role (403) nor fails (5xx); a signed request's 401 is
    inconclusive, an unsigned one's a finding."""
    status = _judgeable(ex, (), False)
    if status in (401, 403) or status >= 500:
        raise Finding(
            f"{what} was answered {answer_text(ex)}; expected an answer other than "
            f"401, 403 or 5xx ({request_text(ex)})"
        )
    return ex


def expect_no_server_error(ex: Exchange, *, what: str) -> Exchange:
    """The answer is not a 5xx: client input never produces one (ATS-API-05)."""
    if _judgeable(ex, (), False) >= 500:
        raise Finding(
            f"{what} was answered {answer_text(ex)}; expected a 4xx or 2xx answer, "
            f"never 5xx ({request_text(ex)})"
        )
    return ex


def expect_json_object(ex: Exchange, *, what: str) -> dict[str, Any]:
    """The answer body is a UTF-8 JSON object, returned parsed."""
    try:
        value = json.loads(ex.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Finding(
            f"{what} was answered with a body that is not UTF-8 JSON; expected a JSON object "
            f"({request_text(ex)})"
        ) from None
    if not isinstance(value, dict):
        raise Finding(
            f"{what} was answered with a JSON {type(value).__name__}; expected a JSON object "
            f"({request_text(ex)})"
        )
    return value


def error_body_problem(ex: Exchange) -> str | None:
    """None when an error answer has the ATS-API-03 body, else what is wrong with it."""
    try:
        body = json.loads(ex.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "the body is not UTF-8 JSON"
    if not isinstance(body, dict):
        return f"the body is a JSON {type(body).__name__}, not an object"
    problems = []
    code = body.get("code")
    table = error_codes_by_status()
    allowed = table.get(ex.status or 0)
    if not isinstance(code, str):
        problems.append("`code` is missing or not a string")
    elif allowed is not None and code not in allowed:
        problems.append(f"`code` is {code!r}, expected {' or '.join(sorted(allowed))}")
    elif allowed is None and code not in {c for cs in table.values() for c in cs}:
        problems.append(f"`code` {code!r} is not in the error table")
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        problems.append("`message` is missing or empty")
    request_id = body.get("request_id")
    header = ex.headers.get("X-Request-Id")
    if not isinstance(request_id, str):
        problems.append("`request_id` is missing or not a string")
    # A missing X-Request-Id header is ATS-API-02's finding; the body is compared when it is there.
    elif header is not None and request_id != header:
        problems.append(f"`request_id` {request_id!r} differs from X-Request-Id {header!r}")
    return "; ".join(problems) or None
