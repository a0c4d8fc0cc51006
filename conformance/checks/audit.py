"""Checks of ATS-1.0 chapter 9 (AUD): the audit trail.

The suite finds its own requests in the trail by the ``X-Request-Id`` values it sends (ATS-API-02
makes the node keep them). Events the AUD checks find are kept on the run state
(``RunState.audit_events``); ATS-AUD-03, run last, reads them again at the end of the run,
together with the oldest page of the trail read just before it tries to change the trail, and
requires them unchanged.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance import compare
from conformance.ats import AUDIT_EVENTS as AUDIT
from conformance.ats import (
    CASCADE_PUSH,
    CASCADE_SYNC,
    CATALOG,
    NODE,
    SHARE_PREFIX,
    SUBSCRIPTIONS,
)
from conformance.ats import share_query_path as _share
from conformance.checks import CheckContext, Finding, Inconclusive, check
from conformance.checks._expect import (
    answer_text,
    expect_json_object,
    expect_status,
    request_text,
)
from conformance.client import Exchange

__all__ = ["audit_events_for", "await_audit_events", "tester_request_id"]

# Well formed (ATS §4) and held by no node the suite knows: a routed query for it goes upward.
UNKNOWN_CODE = "399999/999999"
# An origin app the suite claims as the candidate's parent (ATS §8: a node app's X-Origin-App
# is taken as sent).
ORIGIN_APP = "ats-origin-app"

_PAGE = 100
# ATS §0: in ATS-1.0 only national and provincial nodes have children.
_CHILDLESS_LEVELS = frozenset({"department", "municipal"})
# When the node ignores the request_id filter, the newest pages are scanned, at most this many.
_SCAN_PAGES = 5
_POLL_S = 0.25
# A sync waits for the parent's answer: the cascade timeout (≤ 10 s, ATS-CAS-08) and a margin.
_SYNC_TIMEOUT_S = 15.0
_SHOWN = 3


def tester_request_id(label: str) -> str:
    """A fresh ``X-Request-Id`` of the suite (``^[A-Za-z0-9-]{8,64}$``, ATS-API-02)."""
    return f"ats-{label}-{secrets.token_hex(8)}"


def _outcome(status: int) -> str:
    # ATS §9: ALLOWED for 2xx, DENIED for 4xx, ERROR for 5xx.
    return "ALLOWED" if status < 400 else "DENIED" if status < 500 else "ERROR"


def _audit_page(ctx: CheckContext, params: Mapping[str, Any]) -> dict[str, Any]:
    ex = ctx.client.get(AUDIT, app="admin", params=params)
    expect_status(ex, 200, what="an admin reading the audit trail")
    return expect_json_object(ex, what="the audit trail request")


def _items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = body.get("items")
    if not isinstance(items, list):
        raise Finding(f"the audit trail answer has items {type(items).__name__}; expected a list")
    return [e for e in items if isinstance(e, dict)]


def audit_events_for(ctx: CheckContext, request_id: str) -> list[dict[str, Any]]:
    """The audit events whose ``request_id`` is ``request_id``, read by the admin app.

    The standard's ``request_id`` filter is used; when the node ignores it, the newest pages
    of the trail (ascending ``event_id``) are scanned instead.
    """
    body = _audit_page(ctx, {"request_id": request_id, "size": _PAGE})
    items = _items(body)
    found = [e for e in items if e.get("request_id") == request_id]
    if found or all(e.get("request_id") == request_id for e in items):
        return found
    total = compare.integer(body.get("total"))
    if total is None:
        return found
    last = max(1, math.ceil(total / _PAGE))
    for page in range(last, max(0, last - _SCAN_PAGES), -1):
        page_items = _items(_audit_page(ctx, {"page": page, "size": _PAGE}))
        found += [e for e in page_items if e.get("request_id") == request_id]
    return found


def await_audit_events(
    ctx: CheckContext, sent: Mapping[str, float], within_s: float
) -> dict[str, list[dict[str, Any]]]:
    """The events of each request id in ``sent`` (id → monotonic send time), polled until each
    is found or ``within_s`` after its sending has passed; missing ids map to ``[]``."""
    found: dict[str, list[dict[str, Any]]] = {rid: [] for rid in sent}
    pending = set(sent)
    while pending:
        for rid in sorted(pending):
            events = audit_events_for(ctx, rid)
            if events:
                found[rid] = events
                pending.discard(rid)
        now = time.monotonic()
        pending = {rid for rid in pending if now <= sent[rid] + within_s}
        if pending:
            time.sleep(_POLL_S)
    ctx.run.audit_events.extend(e for events in found.values() for e in events)
    return found


@dataclass(frozen=True)
class _Audited:
    """A request the suite sent and what its audit event must say."""

    label: str
    request_id: str
    exchange: Exchange
    action: str
    sent_at: float
    expect: Mapping[str, Any] = field(default_factory=dict)


def _judgeable(item: _Audited) -> bool:
    ex = item.exchange
    if ex.status is None:
        raise Inconclusive(f"{item.label} got {answer_text(ex)}")
    if ex.status == 429:
        raise Inconclusive(f"{item.label} was rate limited (429); the clause could not be judged")
    return True


def _event_problem(
    item: _Audited, events: Sequence[Mapping[str, Any]], within_s: float
) -> str | None:
    ex = item.exchange
    assert ex.status is not None
    wanted: dict[str, Any] = {
        "action": item.action,
        "status": ex.status,
        "outcome": _outcome(ex.status),
        **item.expect,
    }
    if not events:
        return (
            f"{item.label} ({request_text(ex)} → {answer_text(ex)}, X-Request-Id "
            f"{item.request_id}) is not in the audit trail within {within_s:g} s"
        )
    for event in events:
        if all(_matches(event.get(k), v) for k, v in wanted.items()):
            return None
    shown = {k: events[0].get(k) for k in wanted}
    expected = {
        k: (v if not isinstance(v, tuple) else " or ".join(map(repr, v))) for k, v in wanted.items()
    }
    return (
        f"{item.label} (X-Request-Id {item.request_id}) is recorded as {shown}; expected {expected}"
    )


def _matches(value: Any, wanted: Any) -> bool:
    # A tuple lists every value the standard allows (ATS leaves the choice).
    return value in wanted if isinstance(wanted, tuple) else value == wanted


def _judge(ctx: CheckContext, audited: Sequence[_Audited], within_s: float) -> None:
    judged = [a for a in audited if _judgeable(a)]
    found = await_audit_events(ctx, {a.request_id: a.sent_at for a in judged}, within_s)
    problems = [p for p in (_event_problem(a, found[a.request_id], within_s) for a in judged) if p]
    ctx.note(f"{len(judged)} requests looked up in the audit trail")
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        ctx.fail(shown + more)


def _resource(ctx: CheckContext, role: str) -> str:
    code = ctx.target.resources.get(role)
    if not code:
        raise Inconclusive(f"{ctx.target.source}: resources.{role} is not set")
    return code


# -- ATS-AUD-01 ------------------------------------------------------------------------------


@check("ATS-AUD-01")
def requests_audited(ctx: CheckContext) -> None:
    """Share, subscription and cascade requests are audited within 5 s, whatever their status."""
    within = float(ctx.params.get("recorded_within_s", 5))
    unconditional = _resource(ctx, "unconditional")
    not_shared = ctx.target.resources.get("not_shared")
    subscriber = "consumer_b" if "consumer_b" in ctx.target.apps else "consumer"
    audited: list[_Audited] = []

    def send(label: str, action: str, method: str, path: str, app: str, **kwargs: Any) -> Exchange:
        rid = tester_request_id("aud01")
        sent_at = time.monotonic()
        ex = ctx.client.request(method, path, app=app, headers={"X-Request-Id": rid}, **kwargs)
        audited.append(_Audited(label, rid, ex, action, sent_at))
        return ex

    send(
        "an allowed share query",
        "QUERY",
        "POST",
        _share(unconditional),
        "consumer",
        json={"size": 1},
    )
    send(
        "a share query with an invalid body",
        "QUERY",
        "POST",
        _share(unconditional),
        "consumer",
        json={"fields": 5},
    )
    if not_shared:
        send("a denied share query", "QUERY", "POST", _share(not_shared), "consumer", json={})
        send(
            "a denied subscription", "SUBSCRIBE", "POST", SUBSCRIPTIONS, subscriber,
            json=_subscription(not_shared),
        )  # fmt: skip
    created = send(
        "a subscription", "SUBSCRIBE", "POST", SUBSCRIPTIONS, subscriber,
        json=_subscription(unconditional),
    )  # fmt: skip
    subscription_id = _subscription_id(created)
    if subscription_id is not None:
        ctx.run.subscriptions.append(subscription_id)
        path = f"{SUBSCRIPTIONS}/{subscription_id}"
        decision = {"decision": "APPROVE", "reason": "ATS-AUD-01 audit check"}
        send("a decision", "DECIDE", "POST", f"{path}/decision", "admin", json=decision)
        send("a revocation", "REVOKE", "DELETE", path, "admin")
        send(
            "a decision on a revoked subscription",
            "DECIDE",
            "POST",
            f"{path}/decision",
            "admin",
            json=decision,
        )
    else:
        ctx.note(f"no subscription was created ({answer_text(created)}): decisions not sent")
    pusher = next((n for n in ("as_child", "as_parent") if _has_credential(ctx, n)), None)
    if pusher is not None:
        # A push naming a source other than the signer's neighbour id is refused (ATS-CAS-03)
        # and changes nothing, whatever the neighbours are.
        push = {
            "source_node_id": ctx.target.node.node_id,
            "seq": 1,
            "full": False,
            "entries": [],
            "deleted": [],
        }
        pushed = send(
            "a refused catalog push", "CATALOG_PUSH", "POST", CASCADE_PUSH, pusher, json=push
        )
        if pushed.status == 404 and ctx.target.node.level in _CHILDLESS_LEVELS:
            # ATS §1: a node without children may not serve the push path at all; its 404 is
            # decided before authentication, so no authenticated request reached the node.
            audited.pop()
            ctx.note(f"{answer_text(pushed)} for the push: the path is not served, not audited")
    else:
        ctx.note("the target file has no neighbour credential: catalog pushes not sent")
    send("a sync", "SYNC", "POST", CASCADE_SYNC, "admin", json={}, timeout=_SYNC_TIMEOUT_S)
    _judge(ctx, audited, within)


def _subscription(code: str) -> dict[str, Any]:
    return {
        "resource_code": code,
        "purpose": "ATS-AUD-01: audit of subscription requests",
        "fields": [],
        "unmasked": False,
    }


def _subscription_id(ex: Exchange) -> str | None:
    if ex.status != 201:
        return None
    try:
        body = ex.json()
    except Inconclusive:
        return None
    value = body.get("subscription_id") if isinstance(body, dict) else None
    return str(value) if isinstance(value, str | int) else None


def _has_credential(ctx: CheckContext, name: str) -> bool:
    try:
        ctx.target.credential(name)
    except KeyError:
        return False
    return True


# -- ATS-AUD-02 ------------------------------------------------------------------------------


@check("ATS-AUD-02")
def auth_failures_audited(ctx: CheckContext) -> None:
    """Every 401 is recorded as AUTH_FAILURE with the claimed, well-formed app_id."""
    within = float(ctx.params.get("poll_timeout_s", 5))
    consumer = ctx.client.credential("consumer").app_id
    unconditional = _resource(ctx, "unconditional")
    unknown = f"ats-unknown-{secrets.token_hex(6)}"
    audited: list[_Audited] = []

    def send(
        label: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        expect: Mapping[str, Any],
    ) -> None:
        rid = tester_request_id("aud02")
        sent_at = time.monotonic()
        headers = {**headers, "X-Request-Id": rid}
        if body:
            headers["Content-Type"] = "application/json"
        ex = ctx.client.raw(method, path, headers=headers, body=body)
        expect_status(ex, 401, "UNAUTHENTICATED", what=label, refused_is_finding=True)
        audited.append(_Audited(label, rid, ex, "AUTH_FAILURE", sent_at, expect))

    def wrong(app: str, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        headers = ctx.client.signed_headers(app, method, path, body)
        headers["X-Signature"] = "0" * len(headers["X-Signature"])
        return headers

    body = b"{}"
    send(
        "a wrong signature", "GET", NODE, wrong("consumer", "GET", NODE), b"", {"app_id": consumer}
    )
    send(
        "a wrong signature on a share query", "POST", _share(unconditional),
        wrong("consumer", "POST", _share(unconditional), body), body, {"app_id": consumer},
    )  # fmt: skip
    expired = ctx.client.signed_headers(
        "consumer", "GET", CATALOG, timestamp=int(time.time() * 1000) - 3_600_000
    )
    send("an expired timestamp", "GET", CATALOG, expired, b"", {"app_id": consumer})
    stranger = wrong("consumer", "GET", NODE)
    stranger["X-App-Id"] = unknown
    # ATS §9 makes an unknown app null, ATS-AUD-02 the claimed id: either is conformant.
    send("an unknown app id", "GET", NODE, stranger, b"", {"app_id": (unknown, None)})
    send("a request without signature headers", "GET", NODE, {}, b"", {"app_id": None})
    _judge(ctx, audited, within)


# -- ATS-AUD-03 ------------------------------------------------------------------------------


@check("ATS-AUD-03")
def audit_trail_append_only(ctx: CheckContext) -> None:
    """Writes to the audit trail answer 405, and events read earlier read the same again.

    "Earlier" is the run so far: the clause runs last (``run_last``), so the events the other
    checks read (kept on the run state) are read again at the end of the run.
    """
    earlier = {str(e.get("event_id")): e for e in ctx.run.audit_events if "event_id" in e}
    oldest = {
        str(e.get("event_id")): e for e in _items(_audit_page(ctx, {"page": 1, "size": _PAGE}))
    }
    ctx.note(f"{len(earlier)} events read by earlier checks, {len(oldest)} on the oldest page")
    if not earlier and not oldest:
        ctx.error(
            "the audit trail is empty and no earlier check read an event: whether events are "
            "read again unchanged cannot be judged (run ATS-AUD-03 with ATS-AUD-01)"
        )
    problems: list[str] = []
    for method in ctx.params.get("write_methods", ("POST", "PUT", "PATCH", "DELETE")):
        method = str(method)
        ex = ctx.client.request(method, AUDIT, app="admin", json={} if method != "DELETE" else None)
        try:
            expect_status(ex, 405, "METHOD_NOT_ALLOWED", what=f"{method} on the audit trail")
        except Finding as finding:
            problems.append(finding.reason)
    # Events are identified by event_id and compared on the members ATS §9 defines: an event
    # no longer on the oldest page (ids need not grow: a random UUID may sort before it) is
    # looked up by its request_id, never judged gone by its position.
    again = {
        str(e.get("event_id")): e for e in _items(_audit_page(ctx, {"page": 1, "size": _PAGE}))
    }
    read_again: dict[str, Mapping[str, Any]] = {}
    for request_id in sorted(
        {str(e.get("request_id")) for e in earlier.values()}
        | {str(e.get("request_id")) for k, e in oldest.items() if k not in again}
    ):
        read_again.update({str(e.get("event_id")): e for e in audit_events_for(ctx, request_id)})
    for event_id, event in {**earlier, **oldest}.items():
        now = again.get(event_id, read_again.get(event_id))
        if now is None or not compare.same_members(now, event, compare.AUDIT_EVENT_MEMBERS):
            problems.append(_changed(event_id, event, now))
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        ctx.fail(shown + more)


def _changed(event_id: str, before: Mapping[str, Any], after: Mapping[str, Any] | None) -> str:
    if after is None:
        return f"the audit event {event_id} read earlier is gone; expected it unchanged"
    keys = compare.differing_members(after, before, compare.AUDIT_EVENT_MEMBERS)
    return f"the audit event {event_id} changed in {', '.join(keys)}; expected it unchanged"


# -- ATS-AUD-04 ------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


@check("ATS-AUD-04")
def routed_query_audited_at_each_hop(ctx: CheckContext) -> None:
    """A routed query is recorded at each hop with the same request_id and origin_app."""
    within = float(ctx.params.get("poll_timeout_s", 5))
    assessed = False
    problems: list[str] = []
    if _has_credential(ctx, "as_parent"):
        assessed = True
        problems += _owner_records_origin(ctx, within)
    else:
        ctx.note("the target file has no parent credential: a query routed down is not sent")
    neighbours = ctx.target.neighbours
    if neighbours is not None and neighbours.parent is not None:
        assessed = _upward_hop(ctx, within, problems) or assessed
    else:
        ctx.note("the target file has no parent: a query routed up is not sent")
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        ctx.fail(shown)
    if not assessed:
        # Every node is passed by routed queries (ATS §8): the clause applies, the file lacks.
        ctx.not_assessed(
            f"no routed query could be provoked: {ctx.target.source} names no parent neighbour "
            f"(neighbours.parent with its as_parent credential), through which the suite routes "
            f"a query down to the node and receives the one it routes up"
        )


def _owner_records_origin(ctx: CheckContext, within: float) -> list[str]:
    """The suite as the candidate's parent routes a query down to it: the owner's event carries
    the request id and the origin app of the routed request."""
    unconditional = _resource(ctx, "unconditional")
    parent_id = ctx.target.node.parent_id or "100000"
    rid = tester_request_id("aud04")
    headers = {
        "X-Request-Id": rid,
        "X-Hop-Limit": "6",
        "X-Origin-Node": parent_id,
        "X-Origin-App": ORIGIN_APP,
        "X-Route": parent_id,
    }
    sent_at = time.monotonic()
    ex = ctx.client.post(_share(unconditional), app="as_parent", json={"size": 1}, headers=headers)
    expect_status(ex, 200, what="a query routed down from the parent for a local resource")
    item = _Audited(
        "a query routed down from the parent", rid, ex, "QUERY", sent_at,
        {"origin_app": ORIGIN_APP, "origin_node": parent_id},
    )  # fmt: skip
    events = await_audit_events(ctx, {rid: sent_at}, within)[rid]
    problem = _event_problem(item, events, within)
    return [problem] if problem else []


def _upward_hop(ctx: CheckContext, within: float, problems: list[str]) -> bool:
    """A consumer's query for a code outside the subtree goes up; True when it was assessed."""
    probe = ctx.client.get(f"{CATALOG}/{UNKNOWN_CODE}", app="consumer")
    if probe.status != 404:
        ctx.note(f"{UNKNOWN_CODE} is not unknown here ({answer_text(probe)}): no upward query")
        return False
    emulated = ctx.neighbours.parent if ctx.neighbours is not None else None
    before = len(emulated.recorded(SHARE_PREFIX)) if emulated is not None else 0
    consumer = ctx.client.credential("consumer").app_id
    rid = tester_request_id("aud04")
    sent_at = time.monotonic()
    ex = ctx.client.post(
        _share(UNKNOWN_CODE), app="consumer", json={}, headers={"X-Request-Id": rid}
    )
    if ex.status is None or ex.status == 429:
        raise Inconclusive(f"the query routed up got {answer_text(ex)}")
    item = _Audited(
        "a query routed up to the parent", rid, ex, "QUERY", sent_at,
        {"origin_app": consumer, "origin_node": ctx.target.node.node_id},
    )  # fmt: skip
    own = _event_problem(item, await_audit_events(ctx, {rid: sent_at}, within)[rid], within)
    if own:
        problems.append(own)
    if emulated is not None:
        problems += _parent_saw(emulated.recorded(SHARE_PREFIX)[before:], rid, consumer)
    else:
        _relayed_request_id(ctx, ex, rid, problems)
    return True


def _parent_saw(forwarded: Sequence[Any], rid: str, consumer: str) -> list[str]:
    """What the emulated parent would record of the forwarded query (it is the next hop)."""
    if not forwarded:
        return []  # not forwarded at all: ATS-CAS-05 judges routing, nothing to audit upstream
    mine = [r for r in forwarded if _header(r.headers, "X-Request-Id") == rid]
    if not mine:
        seen = _header(forwarded[0].headers, "X-Request-Id")
        return [
            f"the query was forwarded to the parent with X-Request-Id {seen!r}; expected {rid}, "
            f"so the parent records it under another request_id"
        ]
    request = mine[0]
    problems = []
    if not request.verified:
        problems.append(
            "the forwarded query does not carry the candidate's own valid signature, so the "
            "parent records an authentication failure, not the routed query"
        )
    origin = _header(request.headers, "X-Origin-App")
    if origin != consumer:
        problems.append(
            f"the query was forwarded with X-Origin-App {origin!r}; expected {consumer!r}, so "
            f"the parent records another origin_app"
        )
    return problems


def _relayed_request_id(ctx: CheckContext, ex: Exchange, rid: str, problems: list[str]) -> None:
    """With real neighbours the parent's trail is not readable (a node app gets 403): the
    request id in the relayed error body is what the parent saw."""
    route = compare.route_ids(ex.headers.get("X-Route"))
    ctx.note(f"X-Route of the routed answer: {route}; the parent's origin_app is not observable")
    if len(route) < 2 or ex.status is None or ex.status < 400:
        return
    try:
        body = ex.json()
    except Inconclusive:
        return
    seen = body.get("request_id") if isinstance(body, dict) else None
    if seen is not None and seen != rid:
        problems.append(
            f"the parent answered the routed query with request_id {seen!r}; expected {rid}: "
            f"it received another X-Request-Id"
        )


# -- ATS-AUD-05 ------------------------------------------------------------------------------


@check("ATS-AUD-05")
def audit_forbidden_to_non_admin(ctx: CheckContext) -> None:
    """Consumer and node apps reading the audit trail get 403 FORBIDDEN."""
    names = [
        n for n in ("consumer", "consumer_b", "as_parent", "as_child") if _has_credential(ctx, n)
    ]
    problems = []
    for name in names:
        ex = ctx.client.get(AUDIT, app=name, params={"size": 1})
        try:
            expect_status(ex, 403, "FORBIDDEN", what=f"the {name} app reading the audit trail")
        except Finding as finding:
            problems.append(finding.reason)
    if problems:
        ctx.fail("; ".join(problems))
