"""Checks of ATS-1.0 chapter 1 (API): the general protocol every endpoint follows."""

from __future__ import annotations

import itertools
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from email.message import Message
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from conformance import compare
from conformance.ats import AUDIT_EVENTS as AUDIT
from conformance.ats import CATALOG, HEALTH, NODE, SUBSCRIPTIONS, UNKNOWN_PATH, share_query_path
from conformance.checks import CheckContext, Finding, check
from conformance.checks._expect import (
    answer_text,
    error_body_problem,
    expect_json_object,
    expect_no_server_error,
    expect_status,
    request_text,
)
from conformance.checks._payloads import (
    GeneratedCase,
    corpus,
    invalid_list_queries,
    invalid_query_bodies,
    malformed_json_bodies,
    substitute,
)
from conformance.checks._records import Subscriptions
from conformance.checks._small_pages import item_keys, judge_small_pages
from conformance.checks.node import read_health
from conformance.client import Exchange
from conformance.profile import get_clause

UNKNOWN_CODE = "399999/999999"


def _consumer_apps(ctx: CheckContext) -> Iterator[str]:
    """The target file's consumer apps in turn: many requests spread over their rate limits."""
    names = [n for n in ("consumer", "consumer_b", "load") if n in ctx.target.apps]
    return itertools.cycle(names or ["consumer"])


def _share_query_path(ctx: CheckContext) -> str:
    return share_query_path(ctx.target.resources["unconditional"])


def _send(
    ctx: CheckContext,
    method: str,
    target: str,
    *,
    app: str | None = "consumer",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    allow_transport_error: bool = False,
) -> Exchange:
    """Send ``body`` byte for byte to ``target`` (path and raw query), signed by ``app``."""
    sent: dict[str, str] = {}
    if app is not None:
        sent.update(ctx.client.signed_headers(app, method, target, body))
    if body:
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    return ctx.client.raw(
        method, target, headers=sent, body=body, allow_transport_error=allow_transport_error
    )


def _provoked_errors(ctx: CheckContext) -> list[tuple[str, Exchange]]:
    """One answer of each kind of error a tester can provoke without changing state."""
    return [
        ("an unknown path", ctx.client.get(UNKNOWN_PATH, app="consumer")),
        ("an unserved method", ctx.client.request("POST", NODE, app="consumer", json={})),
        ("an unsigned request", ctx.client.request("GET", NODE, app=None)),
        (
            "a consumer reading the audit trail",
            ctx.client.get(AUDIT, app="consumer"),
        ),
        (
            "a catalog page of size 0",
            ctx.client.request("GET", CATALOG, app="consumer", params=[("size", "0")]),
        ),
        ("an unknown resource code", ctx.client.get(f"{CATALOG}/{UNKNOWN_CODE}", app="consumer")),
        (
            "a malformed JSON body",
            _send(ctx, "POST", _share_query_path(ctx), body=b'{"fields": ['),
        ),
    ]


# ATS-API-01 ---------------------------------------------------------------------------------


def _content_type_problem(ex: Exchange, media_type: str, charsets: Iterable[str]) -> str | None:
    value = ex.headers.get("Content-Type")
    if value is None:
        return "no Content-Type header"
    parsed = Message()
    parsed["Content-Type"] = value
    if parsed.get_content_type() != media_type:
        return f"Content-Type {value!r}"
    extra = [name for name, _ in (parsed.get_params() or [])[1:] if name.lower() != "charset"]
    charset = parsed.get_param("charset")
    if extra:
        return f"Content-Type {value!r} carries parameters other than charset"
    if charset is not None and str(charset).lower() not in {c.lower() for c in charsets}:
        return f"Content-Type {value!r} names charset {charset!r}"
    return None


@check("ATS-API-01")
def json_bodies_under_api_v1(ctx: CheckContext) -> None:
    """Every answer with a body, success or error, is UTF-8 JSON labelled application/json."""
    media_type = str(ctx.params["content_type"])
    charsets = [str(c) for c in ctx.params["allowed_charsets"]]
    base = str(ctx.params["base_path"])
    answers = [
        ("the health request", ctx.client.request("GET", f"{base}/health", app=None)),
        ("the node descriptor request", ctx.client.get(f"{base}/node", app="consumer")),
        ("a catalog page", ctx.client.get(f"{base}/catalog/resources", app="consumer")),
        *_provoked_errors(ctx),
    ]
    expect_status(answers[1][1], 200, what="the node descriptor request under " + base)
    for what, ex in answers:
        if ex.status is None or not ex.body:
            continue
        problem = _content_type_problem(ex, media_type, charsets)
        if problem:
            raise Finding(
                f"{what} was answered with {problem}; expected {media_type} "
                f"(charset {', '.join(charsets)} allowed) ({request_text(ex)})"
            )
        expect_json_object(ex, what=what)


# ATS-API-02 ---------------------------------------------------------------------------------


def _tester_request_id() -> str:
    return f"ats-{uuid.uuid4().hex[:24]}"


@check("ATS-API-02")
def request_id_echoed_or_generated(ctx: CheckContext) -> None:
    """A well-formed X-Request-Id is echoed unchanged; otherwise one of the pattern is generated."""
    pattern = re.compile(str(ctx.params["request_id_pattern"]))
    # (what, method, path, app, json body) — success and error answers alike (ATS-API-02).
    requests: list[tuple[str, str, str, str | None, Any]] = [
        ("the health request", "GET", HEALTH, None, None),
        ("the node descriptor request", "GET", NODE, "consumer", None),
        ("an unsigned request", "GET", NODE, None, None),
        ("an unknown path", "GET", UNKNOWN_PATH, "consumer", None),
        ("an unserved method", "POST", NODE, "consumer", {}),
        ("a catalog page of size 0", "GET", f"{CATALOG}?size=0", "consumer", None),
    ]
    # Each answer kind meets a fresh well-formed id and one malformed or absent id, cycling
    # through the kinds of malformed ids.
    other_ids: list[tuple[str, Callable[[], str | None]]] = [
        ("an X-Request-Id of 8 characters", lambda: "ats-" + uuid.uuid4().hex[:4]),
        (
            "an X-Request-Id of 64 characters",
            lambda: "ats-" + uuid.uuid4().hex + uuid.uuid4().hex[:28],
        ),
        ("an X-Request-Id with an underscore", lambda: "ats_" + uuid.uuid4().hex[:12]),
        ("an X-Request-Id of 7 characters", lambda: "ats-" + uuid.uuid4().hex[:3]),
        (
            "an X-Request-Id of 65 characters",
            lambda: "ats-" + uuid.uuid4().hex + uuid.uuid4().hex[:29],
        ),
        ("no X-Request-Id", lambda: None),
    ]
    for index, (what, method, path, app, body) in enumerate(requests):
        variants = [
            ("a well-formed X-Request-Id", _tester_request_id),
            other_ids[index % len(other_ids)],
        ]
        for id_what, make_id in variants:
            request_id = make_id()
            headers = {"X-Request-Id": request_id} if request_id else {}
            ex = ctx.client.request(method, path, app=app, json=body, headers=headers)
            _judge_request_id(ex, f"{what} with {id_what}", request_id, pattern)


def _judge_request_id(ex: Exchange, label: str, sent: str | None, pattern: re.Pattern[str]) -> None:
    answered = ex.headers.get("X-Request-Id")
    if answered is None:
        raise Finding(
            f"{label} was answered {answer_text(ex)} without X-Request-Id; expected the "
            f"header on every answer ({request_text(ex)})"
        )
    if sent is not None and pattern.fullmatch(sent):
        if answered != sent:
            raise Finding(
                f"{label} was answered with X-Request-Id {answered!r}; expected the sent "
                f"{sent!r} unchanged ({request_text(ex)})"
            )
    elif not pattern.fullmatch(answered):
        raise Finding(
            f"{label} was answered with X-Request-Id {answered!r}; expected a generated "
            f"id matching {pattern.pattern} ({request_text(ex)})"
        )


# ATS-API-03 ---------------------------------------------------------------------------------


@check("ATS-API-03")
def error_bodies_well_formed(ctx: CheckContext) -> None:
    """Every error answer has a body with its code, a message and the X-Request-Id as request_id."""
    # ATS-API-06 holds the size limit; its 413 answer is an error answer like any other.
    size_clause = ctx.profile.clause("ATS-API-06") if ctx.profile else get_clause("ATS-API-06")
    oversized = _padded_body(int(size_clause.params["max_body_bytes"]) + 1)
    too_large = _send(ctx, "POST", _share_query_path(ctx), body=oversized)
    for what, ex in [*_provoked_errors(ctx), ("a body over the size limit", too_large)]:
        if ex.status is None or ex.status < 400:
            continue
        problem = error_body_problem(ex)
        if problem:
            raise Finding(
                f"{what} was answered {ex.status} with a body that breaks ATS-API-03: {problem} "
                f"({request_text(ex)})"
            )


# ATS-API-04 ---------------------------------------------------------------------------------


_MAX_EXTRA_ALLOWED = 8


def _allow_methods(ex: Exchange) -> set[str]:
    """The methods an Allow header lists: comma-separated, whitespace and empty elements ignored.

    Header name and method names are compared without regard to case; several Allow fields
    count as one list (RFC 9110 §5.3).
    """
    value = ex.headers.get("Allow") or ""
    return {token.strip().upper() for token in value.split(",") if token.strip()}


def _allow_problem(
    ctx: CheckContext,
    ex: Exchange,
    path: str,
    served: frozenset[str],
    refused: dict[tuple[str, str], bool],
) -> str | None:
    """Why the Allow of a 405 on ``path`` breaks ATS-API-04, or None when it is right.

    Allow must list every method ATS has the path serve. It may list more — HEAD where GET is
    served, or any method the node chooses to serve — as long as each extra one is served:
    a method Allow lists that itself answers 405 is not served. Extra methods are probed
    unsigned (the method is decided before authentication, ATS §1), at most
    ``_MAX_EXTRA_ALLOWED`` of them, each once per path.
    """
    value = ex.headers.get("Allow")
    if value is None:
        return "without an Allow header"
    listed = _allow_methods(ex)
    missing = served - listed
    if missing:
        return (
            f"with Allow {value!r}, which leaves out {', '.join(sorted(missing))} — served on "
            f"{path}"
        )
    for method in sorted(listed - served)[:_MAX_EXTRA_ALLOWED]:
        if (method, path) not in refused:
            probe = ctx.client.request(method, path, app=None)
            refused[(method, path)] = probe.status == 405
        if refused[(method, path)]:
            return f"with Allow {value!r}, which lists {method}, but {method} on {path} answers 405"
    return None


@check("ATS-API-04")
def unknown_paths_and_methods_refused(ctx: CheckContext) -> None:
    """Unknown paths answer 404; unserved methods 405 with Allow listing every method served."""
    cases = corpus("malformed-requests")
    code = ctx.target.resources["unconditional"]
    served_on = {
        substitute(path, unconditional=code): frozenset(str(m) for m in methods)
        for path, methods in cases["served_methods"].items()
    }
    refused: dict[tuple[str, str], bool] = {}
    # ATS §1 order of evaluation: path (404) and method (405) are decided before
    # authentication, so these requests go unsigned.
    for case in cases["unknown_paths"]:
        for method in cases["unknown_path_methods"]:
            ex = ctx.client.request(method, case["path"], app=None)
            expect_status(ex, 404, "NOT_FOUND", what=f"{method} on {case['description']}")
    unserved = [
        (str(method), str(path), f"{method} on {path}")
        for path in cases["get_only_paths"]
        for method in ctx.params["unserved_methods"]
    ] + [
        (c["method"], substitute(c["path"], unconditional=code), c["description"])
        for c in cases["unserved_methods"]
    ]
    for method, path, what in unserved:
        ex = ctx.client.request(method, path, app=None)
        expect_status(ex, 405, "METHOD_NOT_ALLOWED", what=what)
        problem = _allow_problem(ctx, ex, path, served_on[path], refused)
        if problem:
            raise Finding(
                f"{what} was answered 405 {problem}; expected Allow listing every method the "
                f"path serves ({request_text(ex)})"
            )
    for case in cases["head_paths"]:
        path = case["path"]
        ex = ctx.client.request("HEAD", path, app="consumer" if case["signed"] else None)
        expect_status(ex, (200, 405), what=f"HEAD on {path}")
        if ex.status != 405:
            continue
        refused[("HEAD", path)] = True
        problem = _allow_problem(ctx, ex, path, served_on[path], refused)
        if problem:
            raise Finding(
                f"HEAD on {path} was answered 405 {problem}; expected 200 as for GET, or 405 "
                f"with Allow listing every method the path serves ({request_text(ex)})"
            )


# ATS-API-05 ---------------------------------------------------------------------------------


def _judge_input(ex: Exchange, expected: int, what: str, allowed_5xx: frozenset[int]) -> str | None:
    """None when the answer is the one ATS-API-05 prescribes, else the finding."""
    if ex.status is None:
        return None
    if ex.status >= 500 and ex.status not in allowed_5xx:
        return f"{what} was answered {answer_text(ex)}; expected {expected}, never 5xx"
    # A 400 without an error code is ATS-API-03's finding; another code is this clause's.
    if expected == 400 and (ex.status != 400 or ex.error_code not in (None, "INVALID_REQUEST")):
        return f"{what} was answered {answer_text(ex)}; expected 400 INVALID_REQUEST"
    if expected == 200 and ex.status != 200:
        return f"{what} was answered {answer_text(ex)}; expected 200 (it is ignored)"
    return None


def _run_generated(
    ctx: CheckContext,
    strategy: st.SearchStrategy[GeneratedCase],
    send: Callable[[GeneratedCase], Exchange],
    *,
    examples: int,
    seed_value: int,
    allowed_5xx: frozenset[int],
    findings: list[str],
) -> None:
    """Send ``examples`` generated cases, seeded; findings are collected, not shrunk."""

    @seed(seed_value)
    @settings(
        max_examples=examples,
        phases=(Phase.generate,),
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def probe(case: GeneratedCase) -> None:
        ex = send(case)
        finding = _judge_input(ex, case.expected_status, case.description, allowed_5xx)
        if finding:
            findings.append(f"{finding} ({request_text(ex)})")

    probe()


@check("ATS-API-05")
def invalid_input_answers_400(ctx: CheckContext) -> None:
    """Invalid input answers 400 INVALID_REQUEST, unknown members are ignored, nothing is 5xx."""
    cases = corpus("malformed-requests")
    generation = cases["generation"]
    allowed_5xx = frozenset(int(s) for s in ctx.params["allowed_5xx"])
    max_size = int(generation["max_size"])
    share = _share_query_path(ctx)
    findings: list[str] = []
    apps = _consumer_apps(ctx)

    def send(method: str, target: str, body: bytes = b"", **extra: Any) -> Exchange:
        return _send(ctx, method, target, app=next(apps), body=body, **extra)

    def judge(ex: Exchange, expected: int, what: str) -> None:
        finding = _judge_input(ex, expected, what, allowed_5xx)
        if finding:
            findings.append(f"{finding} ({request_text(ex)})")

    # ATS §1 order: authentication precedes the request shape; a valid query must be served
    # for the answers to invalid ones to say anything about their shape.
    expect_status(send("POST", share, b"{}"), 200, what="a valid share query")
    for case in cases["invalid_query_bodies"]:
        body = bytes.fromhex(case["body_hex"]) if "body_hex" in case else case["body"].encode()
        judge(send("POST", share, body=body), 400, case["description"])
    for case in cases["ignored_body_members"]:
        judge(send("POST", share, body=case["body"].encode()), 200, case["description"])
    for case in cases["invalid_list_queries"]:
        judge(send("GET", f"{CATALOG}?{case['query']}"), 400, case["description"])
    for case in cases["ignored_list_queries"]:
        judge(send("GET", f"{CATALOG}?{case['query']}"), 200, case["description"])
    for case in cases["malformed_content_lengths"]:
        # ATS-API-05: the signature covers the real body; only the length header is broken.
        ex = send(
            "POST",
            share,
            body=b"{}",
            headers={"Content-Length": str(case["value"])},
            allow_transport_error=True,
        )
        if ex.status is None:
            findings.append(
                f"{case['description']}: the node closed the connection without an answer; "
                f"expected 400 INVALID_REQUEST ({request_text(ex)})"
            )
        else:
            judge(ex, 400, case["description"])

    seed_value = int(generation["seed"])
    examples = int(generation["examples_per_strategy"])
    ctx.note(
        f"generated cases: hypothesis seed {seed_value}, {examples} examples per strategy "
        f"(share query bodies, malformed JSON, catalog list queries)"
    )
    generated: list[tuple[st.SearchStrategy[GeneratedCase], Callable[[GeneratedCase], Exchange]]]
    generated = [
        (
            invalid_query_bodies(max_size),
            lambda c: send("POST", share, body=_as_bytes(c.payload)),
        ),
        (
            malformed_json_bodies(),
            lambda c: send("POST", share, body=_as_bytes(c.payload)),
        ),
        (
            invalid_list_queries(max_size),
            lambda c: send("GET", f"{CATALOG}?{_as_text(c.payload)}"),
        ),
    ]
    for strategy, sender in generated:
        _run_generated(
            ctx,
            strategy,
            sender,
            examples=examples,
            seed_value=seed_value,
            allowed_5xx=allowed_5xx,
            findings=findings,
        )
    if findings:
        more = f" (and {len(findings) - 1} more findings)" if len(findings) > 1 else ""
        for line in findings[1:]:
            ctx.note(line)
        raise Finding(findings[0] + more)


def _as_bytes(payload: str | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode()


def _as_text(payload: str | bytes) -> str:
    return payload.decode() if isinstance(payload, bytes) else payload


# ATS-API-06 ---------------------------------------------------------------------------------


def _padded_body(length: int) -> bytes:
    """A JSON object of exactly ``length`` bytes: an unknown member holding padding."""
    head, tail = b'{"ats_padding": "', b'"}'
    return head + b"x" * (length - len(head) - len(tail)) + tail


@check("ATS-API-06")
def oversized_body_rejected(ctx: CheckContext) -> None:
    """A body over the limit answers 413 PAYLOAD_TOO_LARGE before authentication; one at it not."""
    limit = int(ctx.params["max_body_bytes"])
    share = _share_query_path(ctx)
    oversized = _padded_body(limit + 1)
    for what, app in (
        ("an unsigned body one byte over the limit", None),
        ("a signed body one byte over the limit", "consumer"),
    ):
        # ATS-API-06: the node may close the connection after its 413; only an answer counts.
        ex = _send(ctx, "POST", share, app=app, body=oversized, allow_transport_error=True)
        expect_status(ex, 413, "PAYLOAD_TOO_LARGE", what=what, refused_is_finding=True)
    ex = _send(ctx, "POST", share, body=_padded_body(limit))
    if ex.status == 413:
        raise Finding(
            f"a signed body of exactly {limit} bytes was answered 413; expected it to be "
            f"accepted, only longer bodies are too large ({request_text(ex)})"
        )
    expect_no_server_error(ex, what=f"a signed body of exactly {limit} bytes")


# ATS-API-07 ---------------------------------------------------------------------------------


@check("ATS-API-07")
def internals_not_revealed(ctx: CheckContext) -> None:
    """No answer reveals a stack trace, source path, SQL, exception class or software version."""
    leaks = corpus("internals-leaks")
    patterns = [(c["description"], re.compile(c["pattern"])) for c in leaks["body_patterns"]]
    version = re.compile(leaks["server_version_pattern"])
    share = _share_query_path(ctx)
    answers = [
        *_provoked_errors(ctx),
        ("the health request", ctx.client.request("GET", HEALTH, app=None)),
        ("a body of the wrong type", _send(ctx, "POST", share, body=b'{"page": "x"}')),
        ("a body that is not an object", _send(ctx, "POST", share, body=b"[1, 2]")),
        ("bytes that are not UTF-8", _send(ctx, "POST", share, body=b'{"filter": "\xff\xfe"}')),
        ("an undeclared item", _send(ctx, "POST", share, body=b'{"fields": ["ats_no_item"]}')),
        ("a huge page number", _send(ctx, "GET", f"{CATALOG}?page=99999999999999999999999")),
        ("a malformed timestamp", _send(ctx, "GET", f"{CATALOG}?updated_since=2017-13-45T99")),
        ("a malformed resource code", _send(ctx, "POST", share_query_path("abc"), body=b"{}")),
        ("a wrong signature", _wrong_signature(ctx)),
    ]
    for what, ex in answers:
        if ex.status is None:
            continue
        for name in leaks["version_headers"]:
            value = ex.headers.get(name)
            if value is not None and version.search(value):
                raise Finding(
                    f"{what} was answered with {name}: {value!r}, which reveals a software "
                    f"version; expected no version number ({request_text(ex)})"
                )
        text = "\n".join(f"{k}: {v}" for k, v in ex.headers.items()) + "\n"
        text += ex.body.decode("utf-8", errors="replace")
        for description, pattern in patterns:
            match = pattern.search(text)
            if match:
                raise Finding(
                    f"{what} was answered {answer_text(ex)} revealing internals "
                    f"({description}): {match.group(0)[:80]!r} ({request_text(ex)})"
                )


def _wrong_signature(ctx: CheckContext) -> Exchange:
    headers = dict(ctx.client.signed_headers("consumer", "GET", NODE, b""))
    headers["X-Signature"] = "0" * len(headers["X-Signature"])
    return ctx.client.raw("GET", NODE, headers=headers, body=b"")


# ATS-API-08 ---------------------------------------------------------------------------------


def _page(ctx: CheckContext, page: int | None, size: int | None) -> tuple[Exchange, dict[str, Any]]:
    params = [(k, str(v)) for k, v in (("page", page), ("size", size)) if v is not None]
    ex = ctx.client.request("GET", CATALOG, app="consumer", params=params)
    expect_status(ex, 200, what=f"the catalog page {params or 'with defaults'}")
    body = expect_json_object(ex, what="a catalog page")
    items, total = body.get("items"), body.get("total")
    if not isinstance(items, list) or not compare.is_integer(total):
        raise Finding(
            f"a catalog page lacks `items` (list) or `total` (integer); got members "
            f"{sorted(body)} ({request_text(ex)})"
        )
    body["total"] = compare.integer(total)  # 25.0 is the integer 25 (ATS-API-09)
    for member, expected in (("page", page), ("size", size)):
        if expected is not None and compare.integer(body.get(member)) != expected:
            raise Finding(
                f"a catalog page answered `{member}` {body.get(member)!r}; expected {expected} "
                f"as requested ({request_text(ex)})"
            )
    return ex, body


def _codes(items: list[Any]) -> list[str]:
    return [
        str(item.get("resource_code")) if isinstance(item, dict) else repr(item) for item in items
    ]


@check("ATS-API-08")
def pagination_complete_and_ordered(ctx: CheckContext) -> None:
    """Catalog pages walk every entry once in resource_code order, with defaults and size bounds."""
    default_page, default_size = int(ctx.params["default_page"]), int(ctx.params["default_size"])
    min_size, max_size = int(ctx.params["min_size"]), int(ctx.params["max_size"])
    max_pages = int(ctx.params["max_walk_pages"])
    order = list(ctx.params["order"]["catalog"])
    if order != ["resource_code"]:
        ctx.skip(f"the profile orders the catalog by {order}; only resource_code is walked")
    _, first = _page(ctx, None, None)
    if (compare.integer(first.get("page")), compare.integer(first.get("size"))) != (
        default_page,
        default_size,
    ):
        raise Finding(
            f"a catalog page without page and size answered page {first.get('page')!r}, size "
            f"{first.get('size')!r}; expected the defaults {default_page} and {default_size}"
        )
    total = first["total"]
    pages = max(1, math.ceil(total / max_size))
    if pages > max_pages:
        ctx.error(f"the catalog holds {total} entries, more than {max_pages} pages of {max_size}")
    seen: list[str] = []
    for number in range(1, pages + 1):
        ex, body = _page(ctx, number, max_size)
        if body["total"] != total:
            raise Finding(
                f"page {number} answered total {body['total']}, page 1 of the defaults {total}; "
                f"expected the same total while the catalog does not change ({request_text(ex)})"
            )
        expected_count = min(max_size, total - (number - 1) * max_size)
        if len(body["items"]) != expected_count:
            raise Finding(
                f"page {number} of size {max_size} holds {len(body['items'])} entries; expected "
                f"{expected_count} of total {total} ({request_text(ex)})"
            )
        seen.extend(_codes(body["items"]))
    _judge_walk(seen, total)
    if _codes(first["items"]) != seen[:default_size]:
        raise Finding(
            f"the default page holds {_codes(first['items'])[:3]}…; expected the first "
            f"{default_size} entries of the walk, {seen[:3]}…"
        )
    if total > default_size:
        ex, second = _page(ctx, 2, default_size)
        expected = seen[default_size : 2 * default_size]
        got = _codes(second["items"])
        if got != expected:
            where = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                         min(len(got), len(expected)))  # fmt: skip
            raise Finding(
                f"page 2 of size {default_size} disagrees with the walk by pages of {max_size} "
                f"at position {where + 1}: expected {expected[where : where + 2]}, received "
                f"{got[where : where + 2]} ({len(got)} items; expected {len(expected)}) "
                f"({request_text(ex)})"
            )
    past = pages + 1
    ex, body = _page(ctx, past, max_size)
    if body["items"]:
        raise Finding(
            f"page {past}, past the end, holds {len(body['items'])} entries; expected items [] "
            f"({request_text(ex)})"
        )
    # ATS-API-08: the size bounds hold on every list endpoint, read by an app allowed to list.
    lists = [(CATALOG, "consumer")]
    if "admin" in ctx.target.apps:
        lists += [(SUBSCRIPTIONS, "admin"), (AUDIT, "admin")]
    for path, app in lists:
        for size in (min_size - 1, max_size + 1):
            ex = ctx.client.request("GET", path, app=app, params=[("size", str(size))])
            expect_status(ex, 400, what=f"a page of {path} of size {size}")
    if "admin" in ctx.target.apps:
        _judge_list_order(ctx, SUBSCRIPTIONS, ("created_at", "subscription_id"), max_size)
        _judge_list_order(ctx, AUDIT, ("event_id",), max_size)
    # ATS-API-08 holds for every page size, on every list endpoint: small pages too.
    judge_small_pages(ctx, CATALOG, app="consumer", member="resource_code", reference=seen,
                      total=total, label="the catalog list")  # fmt: skip
    if "admin" in ctx.target.apps:
        with Subscriptions(ctx) as subs:
            _fill_subscriptions(ctx, subs, max_size)
            _judge_small_pages_of(ctx, SUBSCRIPTIONS, "subscription_id", max_size)
        _judge_small_pages_of(ctx, AUDIT, "event_id", max_size)


# Subscriptions the small-page walk needs: three split into pages of 2 (not dividing) and 1.
_SMALL_WALK_ITEMS = 3


def _fill_subscriptions(ctx: CheckContext, subs: Subscriptions, size: int) -> None:
    """The subscription list holds enough items for a small-page walk (ATS-API-08): on a
    fresh node it is empty, so the consumer subscribes to the UNCONDITIONAL resource until it
    holds three (at most three requests); the clean-up revokes them, which keeps them listed."""
    if "consumer" not in ctx.target.apps:
        return
    _, total = _first_page_keys(ctx, SUBSCRIPTIONS, "subscription_id", size)
    code = ctx.target.resources["unconditional"]
    for _ in range(_SMALL_WALK_ITEMS - (total if total is not None else _SMALL_WALK_ITEMS)):
        ex = subs.create("consumer", code)
        if ex.status != 201:
            ctx.note(
                f"a subscription for the small-page walk was answered {answer_text(ex)}; the "
                f"subscription list is walked as it is"
            )
            return


def _first_page_keys(
    ctx: CheckContext, path: str, member: str, size: int
) -> tuple[list[str], int | None]:
    ex = ctx.client.request("GET", path, app="admin", params=[("size", str(size))])
    expect_status(ex, 200, what=f"a page of {path} read by the provider-admin")
    body = expect_json_object(ex, what=f"a page of {path}")
    total = body.get("total")
    return item_keys(_list_items(body), member), total if isinstance(total, int) else None


def _judge_small_pages_of(ctx: CheckContext, path: str, member: str, size: int) -> None:
    """``path`` read by small pages agrees with its first page of ``size`` (ATS-API-08).

    The clause holds "while the collection does not change": the first page is read before
    and after, and a collection that changed meanwhile (a node may record more than ATS
    requires) is read once more; one that keeps changing is not judged.
    """
    for _ in range(2):
        reference, total = _first_page_keys(ctx, path, member, size)
        if total is None:
            return  # the shape of the page is the finding of the walk above
        found: Finding | None = None
        try:
            judge_small_pages(ctx, path, app="admin", member=member, reference=reference,
                              total=total)  # fmt: skip
        except Finding as exc:
            found = exc
        if _first_page_keys(ctx, path, member, size) == (reference, total):
            if found is not None:
                raise found
            return
    ctx.note(f"{path} changed while it was read by small pages; its small pages are not judged")


def _order_key(value: Any) -> tuple[Any, ...] | None:
    """A sort key of one ordering member: a timestamp as its instant, a number numerically
    (``25.0`` is 25), any other string by code point (ATS-API-08, ATS-API-09); None when the
    value has none of these forms."""
    number = compare.integer(value)
    if number is not None:
        return (0, number)
    if isinstance(value, str):
        moment = compare.instant(value)
        return (1, value) if moment is None else (2, moment)
    return None


def _out_of_order(
    items: list[dict[str, Any]], members: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first pair of items not in ascending order of ``members``, else None.

    Integers compare as numbers, timestamps as instants, other strings by Unicode code point
    (Revision of 2026-12: ``evt-10`` comes before ``evt-9``); values of mixed or other types are
    not judged.
    """
    keys = [tuple(_order_key(item.get(m)) for m in members) for item in items]
    if any(k is None for key in keys for k in key):
        return None  # a malformed member is the finding of the clause that owns its shape
    try:
        index = next((i for i in range(len(keys) - 1) if keys[i] > keys[i + 1]), None)
    except TypeError:
        return None
    return None if index is None else (items[index], items[index + 1])


def _judge_list_order(ctx: CheckContext, path: str, members: tuple[str, ...], size: int) -> None:
    """The first page of a list comes in ascending order of ``members`` (ATS-API-08)."""
    ex = ctx.client.request("GET", path, app="admin", params=[("size", str(size))])
    expect_status(ex, 200, what=f"a page of {path} read by the provider-admin")
    pair = _out_of_order(_list_items(expect_json_object(ex, what=f"a page of {path}")), members)
    if pair is not None:
        before, after = pair
        raise Finding(
            f"a page of {path} lists {[before.get(m) for m in members]} before "
            f"{[after.get(m) for m in members]}; expected ascending {', '.join(members)} "
            f"({request_text(ex)})"
        )


def _judge_walk(seen: list[str], total: int) -> None:
    if len(seen) != total:
        raise Finding(f"walking all pages yielded {len(seen)} entries; expected total {total}")
    repeated = sorted({code for code in seen if seen.count(code) > 1})
    if repeated:
        raise Finding(f"walking all pages yielded {repeated[0]} more than once; expected each once")
    index = compare.out_of_order(seen)
    if index is not None:
        raise Finding(
            f"catalog entries come as {seen[index - 1]} before {seen[index]}; expected "
            f"ascending resource_code order (by Unicode code point)"
        )


# ATS-API-09 ---------------------------------------------------------------------------------


def _timestamp_problem(value: Any, pattern: re.Pattern[str]) -> str | None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return f"{value!r} is not RFC 3339 with Z or ±hh:mm"
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return f"{value!r} is not a real date and time"
    return None


def _date_problem(value: Any, pattern: re.Pattern[str]) -> str | None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return f"{value!r} is not YYYY-MM-DD"
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a real date"
    return None


@check("ATS-API-09")
def timestamps_rfc3339(ctx: CheckContext) -> None:
    """Timestamps the node writes are RFC 3339 with an offset, dates YYYY-MM-DD; it reads both."""
    stamp = re.compile(str(ctx.params["timestamp_pattern"]))
    day = re.compile(str(ctx.params["date_pattern"]))
    checks: list[tuple[str, Any, Callable[[Any, re.Pattern[str]], str | None], re.Pattern[str]]]
    checks = [
        (
            "the health time",
            read_health(ctx).get("time"),
            _timestamp_problem,
            stamp,
        )
    ]
    page = ctx.client.request("GET", CATALOG, app="consumer", params=[("size", "5")])
    expect_status(page, 200, what="a catalog page")
    for entry in _list_items(expect_json_object(page, what="a catalog page")):
        code = entry.get("resource_code")
        checks.append((f"updated_at of {code}", entry.get("updated_at"), _timestamp_problem, stamp))
        checks.append((f"published_at of {code}", entry.get("published_at"), _date_problem, day))
    for path, member, app in ((SUBSCRIPTIONS, "created_at", "admin"), (AUDIT, "time", "admin")):
        if app not in ctx.target.apps:
            continue
        ex = ctx.client.request("GET", path, app=app, params=[("size", "5")])
        if ex.status != 200:
            continue
        for item in _list_items(expect_json_object(ex, what=f"a page of {path}")):
            checks.append(
                (f"{member} of an item of {path}", item.get(member), _timestamp_problem, stamp)
            )
    for what, value, judge, pattern in checks:
        problem = judge(value, pattern)
        if problem:
            raise Finding(f"{what}: {problem}")
    # ATS-API-09: the node reads what it writes: offsets (percent-encoded +) and fractions.
    for value in (
        "2000-01-01T00:00:00+08:00",
        "2000-01-01T00:00:00.250Z",
        "2000-01-01T08:00:00-00:30",
    ):
        ex = ctx.client.request(
            "GET", CATALOG, app="consumer", params=[("size", "1"), ("updated_since", value)]
        )
        expect_status(ex, 200, what=f"a catalog page with updated_since {value}")


def _list_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = body.get("items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
