"""ATS-CAS-04 to -09: queries routed between levels (ATS §8).

A query the candidate cannot answer from its own catalog goes down to the child holding the
code or up to the parent; the forwarded request carries the node's own signature, the caller's
body and ``X-Request-Id``, a decremented hop limit, the origin headers and the route; the next
hop's answer, success or error, is relayed unchanged; loops and exhausted hop limits answer
508, failing next hops 502 or 504. Where what the neighbour received is not observable (live
mode), the route of the answer shows that the node forwarded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from conformance import ats, compare
from conformance.checks import CheckContext, check
from conformance.checks._expect import answer_text, expect_status, request_text
from conformance.checks.cascade.roles import (
    child_code,
    from_parent_headers,
    outside_code,
    role_code,
)
from conformance.checks.cascade.view import (
    QUERY_BODY,
    View,
    catalog,
    expect_routed_answer,
    held_from,
    query,
    sent_request_id,
    view,
    witnessed,
)
from conformance.client import Exchange
from conformance.neighbours import Behaviour, RecordedRequest, error_body, share_answer
from conformance.target import NeighbourSpec


@dataclass(frozen=True)
class Forwarded:
    """A code the candidate has just forwarded to its ``role`` neighbour, and the route its
    answer takes (the candidate, then the neighbour)."""

    role: str
    spec: NeighbourSpec
    code: str
    route: list[str]


@contextmanager
def forwarding(ctx: CheckContext, hood: View) -> Iterator[Forwarded]:
    """A code the node has just forwarded, the neighbour holding it for the block: one outside
    the subtree through the parent, else (or when the node does not route up) one held from
    the child. Forwarding shows in what the neighbour received or, where that is not
    observable, in the route of the answer. A node that forwards to neither cannot be judged
    here (ATS-CAS-04/05 judge it)."""
    own = ctx.target.node.node_id
    tried = []
    for role in hood.forwarding_roles():
        hood.emulated(role)
        spec = hood.spec(role, "")
        route = [own, spec.node_id]
        with role_code(ctx, hood, role) as code, hood.holding(role, code):
            started = time.time()
            probe = query(ctx, code)
            records = hood.received(role, code, started)
            if records is None:
                reached = compare.route_ids(probe.headers.get(ats.X_ROUTE))[:2] == route
                shown = f" with X-Route {probe.headers.get(ats.X_ROUTE)!r}"
            else:
                reached, shown = bool(records), ""
            if reached:
                yield Forwarded(role, spec, code, route)
                return
        tried.append(f"{code} (for the {role}) was answered {answer_text(probe)}{shown}")
    ctx.error(f"the node forwarded no query to a neighbour: {'; '.join(tried)}")


def _not_forwarded(
    ctx: CheckContext, hood: View, forwarded: Forwarded, since: float, what: str
) -> None:
    """The query sent since ``since`` did not reach the neighbour (when that is observable)."""
    if hood.received(forwarded.role, forwarded.code, since):
        ctx.fail(f"{what} was forwarded to the {forwarded.role}; expected no forwarding")


def _forward_problems(
    ctx: CheckContext,
    rec: RecordedRequest,
    spec: NeighbourSpec,
    ex: Exchange,
    *,
    hop_limit: int,
    caller_app: str,
) -> list[str]:
    """What in a forwarded query differs from ATS §8: the node's own signature, the body and
    X-Request-Id kept, the hop limit, the origin headers and the route."""
    problems = []
    own = ctx.target.node.node_id
    app_id = rec.header(ats.X_APP_ID)
    if not rec.verified:
        problems.append(
            f"it does not carry the node's own valid signature at the {spec.role} (X-App-Id "
            f"{app_id!r}, expected {spec.candidate.app_id!r}; ATS-CAS-09)"
        )
    if rec.stale:
        problems.append(f"the {spec.role} refused it: {rec.stale}")
    if rec.json() != QUERY_BODY:
        problems.append(f"its body is {rec.body[:120]!r}, expected the caller's {QUERY_BODY}")
    sent_id = sent_request_id(ex)
    if rec.header(ats.X_REQUEST_ID) != sent_id:
        problems.append(f"X-Request-Id is {rec.header(ats.X_REQUEST_ID)!r}, expected {sent_id!r}")
    if rec.header(ats.X_HOP_LIMIT) != str(hop_limit):
        problems.append(f"X-Hop-Limit is {rec.header(ats.X_HOP_LIMIT)!r}, expected {hop_limit}")
    if rec.header(ats.X_ORIGIN_NODE) != own:
        problems.append(f"X-Origin-Node is {rec.header(ats.X_ORIGIN_NODE)!r}, expected {own!r}")
    if rec.header(ats.X_ORIGIN_APP) != caller_app:
        problems.append(
            f"X-Origin-App is {rec.header(ats.X_ORIGIN_APP)!r}, expected {caller_app!r}"
        )
    # The caller sent no X-Route: the forwarded route is the node alone.
    if compare.route_ids(rec.header(ats.X_ROUTE)) != [own]:
        problems.append(f"X-Route is {rec.header(ats.X_ROUTE)!r}, expected {own!r}")
    return problems


def _expect_relayed(
    ctx: CheckContext,
    ex: Exchange,
    status: int,
    body: Any,
    route: str,
    retry_after: str | None,
    what: str,
) -> None:
    problems = []
    if ex.status != status:
        problems.append(f"status {answer_text(ex)}, expected {status}")
    try:
        got = json.loads(ex.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        got = None
    if got != body:
        problems.append(f"body {ex.body[:160]!r}, expected {json.dumps(body)[:160]}")
    if compare.route_ids(ex.headers.get(ats.X_ROUTE)) != compare.route_ids(route):
        problems.append(f"X-Route {ex.headers.get(ats.X_ROUTE)!r}, expected {route!r}")
    if retry_after is not None and ex.headers.get("Retry-After") != retry_after:
        problems.append(f"Retry-After {ex.headers.get('Retry-After')!r}, expected {retry_after!r}")
    if problems:
        ctx.fail(f"{what} was not relayed unchanged: {'; '.join(problems)} ({request_text(ex)})")


def _open_to_consumers(entry: Mapping[str, Any]) -> bool:
    """An entry any consumer may query without a subscription (ATS §5, ATS-CAT-06)."""
    share = entry.get("share") or {}
    kind = (entry.get("format") or {}).get("kind")
    return (
        share.get("type") == "UNCONDITIONAL"
        and share.get("method") == "API"
        and kind in ("DATABASE", "SELF_DESCRIBING")
    )


def _conditional(entry: Mapping[str, Any]) -> bool:
    share = entry.get("share") or {}
    return share.get("type") == "CONDITIONAL" and share.get("method") == "API"


@contextmanager
def _answered_by_child(
    ctx: CheckContext, hood: View, spec: NeighbourSpec
) -> Iterator[tuple[str, str]]:
    """A code the child answers 200 for, and how the reasons name it: with an emulated child,
    one held from it (the child made to hold it); with the real child, a resource of its open
    to consumers (not assessed when it has none)."""
    if hood.emulated("child") is not None:
        with child_code(ctx, spec) as code:
            yield code, f"held by child {spec.node_id}"
        return
    held = held_from(catalog(ctx, "subtree"), catalog(ctx, "local"), spec.node_id)
    open_codes = sorted(c for c, e in held.items() if _open_to_consumers(e))
    if not open_codes:
        ctx.not_assessed(
            f"live mode: the child {spec.node_id} holds no resource open to consumers, so no "
            f"query routed down can be answered"
        )
    yield open_codes[0], "an open resource of the child"


def _routed_as_described(
    ctx: CheckContext, hood: View, spec: NeighbourSpec, code: str, where: str
) -> None:
    """A query for ``code`` reaches the neighbour ``spec`` as ATS §8 describes (own signature,
    body and X-Request-Id kept, hop limit decremented, origin headers and route set), and the
    neighbour's answers, a success and an error, are relayed unchanged with their X-Route.

    What the neighbour received, and an error it is made to answer, are seen with an emulated
    neighbour; a real one shows its answer's route, and an error through a CONDITIONAL resource
    of its, refused without a subscription of the pair (X-Origin-Node, X-Origin-App) at the
    owner (403 SUBSCRIPTION_REQUIRED, ATS §8)."""
    role = spec.role
    route = [ctx.target.node.node_id, spec.node_id]
    relayed_route = ",".join(route)
    default_hops = int(ctx.params["default_hop_limit"])
    caller = ctx.target.credential("consumer").app_id
    with hood.holding(role, code):
        started = time.time()
        ex = query(ctx, code)
        records = hood.received(role, code, started)
        if records is None:
            what = f"a query for {code}, {where}"
            expect_status(ex, 200, what=what)
            expect_routed_answer(ctx, ex, route, what=what)
        else:
            if not records:
                ctx.fail(
                    f"a query for {code}, {where}, was answered {answer_text(ex)} and never "
                    f"reached the {role} {spec.node_id}"
                )
            problems = _forward_problems(
                ctx, records[-1], spec, ex, hop_limit=default_hops, caller_app=caller
            )
            if problems:
                ctx.fail(f"the query forwarded to the {role} for {code}: {'; '.join(problems)}")
            _expect_relayed(
                ctx,
                ex,
                200,
                share_answer(code),
                relayed_route,
                None,
                f"the {role}'s query answer",
            )
    neighbour = hood.emulated(role)
    if neighbour is not None:
        limited = Behaviour(mode="error", status=429, code="RATE_LIMITED", retry_after="7")
        with neighbour.behaving(limited):
            ex = query(ctx, code)
            expected = error_body(limited, sent_request_id(ex) or "")
            _expect_relayed(ctx, ex, 429, expected, relayed_route, "7", f"the {role}'s 429 answer")
        ctx.note(
            f"{code}: forwarded to the {role} with X-Hop-Limit {default_hops}; 200 and 429 relayed"
        )
        return
    shown = [f"{code} answered 200"]
    held = held_from(catalog(ctx, "subtree"), catalog(ctx, "local"), spec.node_id)
    conditional = sorted(c for c, e in held.items() if _conditional(e))
    if conditional:
        ex = query(ctx, conditional[0])
        what = f"a query for {conditional[0]}, a CONDITIONAL resource of the child"
        expect_status(ex, 403, "SUBSCRIPTION_REQUIRED", what=what)
        expect_routed_answer(ctx, ex, route, what=what)
        shown.append(f"{conditional[0]} answered 403 SUBSCRIPTION_REQUIRED")
    ctx.note(
        f"live mode: {', '.join(shown)}, both through the child; the forwarded request is not "
        f"observable"
    )


# ATS-CAS-04 ------------------------------------------------------------------------------------


@check("ATS-CAS-04")
@witnessed
def downward_routing_relays_answer(ctx: CheckContext) -> None:
    """A query for a child's resource is forwarded to the child as ATS §8 describes, and the
    child's answer, success or error, is relayed unchanged."""
    hood = view(ctx)
    spec = hood.spec("child", "to receive the queries the candidate routes down")
    with _answered_by_child(ctx, hood, spec) as (code, where):
        _routed_as_described(ctx, hood, spec, code, where)


# ATS-CAS-05 ------------------------------------------------------------------------------------


@check("ATS-CAS-05")
@witnessed
def upward_routing_to_parent(ctx: CheckContext) -> None:
    """A code outside the subtree is forwarded to the parent, and its answer relayed; the same
    query received from the parent answers 404 without going back up."""
    hood = view(ctx)
    spec = hood.spec("parent", "to receive the queries the candidate routes up")
    own = ctx.target.node.node_id
    route = [own, spec.node_id]
    code = outside_code(catalog(ctx, "subtree"))
    emulated = hood.emulated("parent") is not None
    if emulated:
        # ATS §8 routes up by the same rules as down: ATS-CAS-04's judgement, towards the
        # parent, which the suite makes hold the code.
        _routed_as_described(ctx, hood, spec, code, "outside the node's subtree")
    with hood.holding("parent", code):
        # ATS-SHR-07: a code no node holds answers 404 where routing ends — here at the parent.
        unknown = outside_code({**catalog(ctx, "subtree"), code: None}) if emulated else code
        ex = query(ctx, unknown)
        expect_status(ex, 404, "NOT_FOUND", what=f"a query for {unknown}, which no node holds")
        expect_routed_answer(ctx, ex, route, what=f"a query for {unknown}")
        started = time.time()
        back = query(ctx, code, app="as_parent", headers=from_parent_headers(spec))
        expect_status(back, 404, "NOT_FOUND", what=f"a query for {code} received from the parent")
        records = hood.received("parent", code, started)
        if records:
            ctx.fail(f"a query received from the parent for {code} was forwarded back to it")
        if records is None and compare.route_ids(back.headers.get(ats.X_ROUTE))[-1:] != [own]:
            ctx.fail(
                f"a query received from the parent for {code} was answered with X-Route "
                f"{back.headers.get(ats.X_ROUTE)!r}; expected the node to answer it itself"
            )
    if records is None:
        ctx.note("live mode: the forwarded request itself is not observable")
    else:
        ctx.note(f"{code} forwarded to the parent and relayed; from the parent it answers 404")


# ATS-CAS-06 ------------------------------------------------------------------------------------


@check("ATS-CAS-06")
@witnessed
def hop_limit_enforced(ctx: CheckContext) -> None:
    """X-Hop-Limit 1 answers 508 without forwarding; forwarded limits are one below the incoming
    value, never below 1; values outside 1..8 or not integers answer 400."""
    low, high = int(ctx.params["min_hop_limit"]), int(ctx.params["max_hop_limit"])
    invalid = [str(low - 1), str(high + 1), "x", "2.5"]
    hood = view(ctx)
    with forwarding(ctx, hood) as forwarded:
        code = forwarded.code
        started = time.time()
        ex = query(ctx, code, headers={ats.X_HOP_LIMIT: str(low)})
        expect_status(
            ex, 508, "LOOP_DETECTED", what=f"a query needing forwarding with X-Hop-Limit {low}"
        )
        _not_forwarded(ctx, hood, forwarded, started, f"a query with X-Hop-Limit {low}")
        for value in invalid:
            started = time.time()
            ex = query(ctx, code, headers={ats.X_HOP_LIMIT: value})
            expect_status(ex, 400, "INVALID_REQUEST", what=f"X-Hop-Limit {value!r}")
            _not_forwarded(ctx, hood, forwarded, started, f"X-Hop-Limit {value!r}")
        seen = []
        for incoming in (low + 1, high, None):
            started = time.time()
            headers = {ats.X_HOP_LIMIT: str(incoming)} if incoming is not None else {}
            ex = query(ctx, code, headers=headers)
            records = hood.received(forwarded.role, code, started)
            if records is None:
                # What the node forwarded is not observable: its answer's route shows that it
                # forwarded a valid limit above the minimum.
                expect_routed_answer(
                    ctx, ex, forwarded.route, what=f"a query with X-Hop-Limit {incoming}"
                )
                ctx.note("live mode: the forwarded X-Hop-Limit value is not observable")
                return
            expected = incoming - 1 if incoming else int(ctx.params["default_hop_limit"])
            got = records[-1].header(ats.X_HOP_LIMIT) if records else None
            if got != str(expected):
                ctx.fail(
                    f"a query with X-Hop-Limit {incoming or 'absent'} was forwarded "
                    f"with X-Hop-Limit {got!r} ({answer_text(ex)}); expected {expected}"
                )
            seen.append(f"{incoming or 'absent'}→{got}")
    ctx.note(f"X-Hop-Limit {low} → 508, {', '.join(invalid)} → 400; forwarded {', '.join(seen)}")


# ATS-CAS-07 ------------------------------------------------------------------------------------


@check("ATS-CAS-07")
@witnessed
def routing_loop_detected(ctx: CheckContext) -> None:
    """A query needing forwarding whose X-Route already holds the node answers 508 without
    forwarding."""
    own = ctx.target.node.node_id
    routes = [own, f"100000, {own}", f"{own},100000"]
    hood = view(ctx)
    with forwarding(ctx, hood) as forwarded:
        for route in routes:
            started = time.time()
            ex = query(ctx, forwarded.code, headers={ats.X_ROUTE: route})
            expect_status(ex, 508, "LOOP_DETECTED", what=f"a query with X-Route {route!r}")
            _not_forwarded(ctx, hood, forwarded, started, f"a query with X-Route {route!r}")
    if not hood.observes:
        ctx.note("live mode: whether the node forwarded is seen only in its answer")
        return
    ctx.note(f"X-Route {' | '.join(routes)} → 508 without forwarding")
    if hood.has("child"):
        _child_sends_back(ctx, hood, hood.spec("child", "to send a query back"))


def _child_sends_back(ctx: CheckContext, hood: View, spec: NeighbourSpec) -> None:
    """A child that sends a forwarded query back to the node (a loop between two nodes) gets
    508 from the node, which forwards it no second time."""
    child = hood.emulated("child")
    if child is None:
        return
    with child_code(ctx, spec) as code:
        node = ctx.target.node
        loop = Behaviour(
            mode="loop", holds=frozenset({code}), loop_url=node.base_url, loop_ca=node.ca_bundle
        )
        started = time.time()
        answered, failed = len(child.loop_answers), len(child.loop_errors)
        with child.behaving(loop):
            ex = query(ctx, code)
        received = hood.received("child", code, started) or []
        looped = child.loop_answers[answered:]
        unsent = child.loop_errors[failed:]
    if unsent and not looped:
        # The emulated child could not reach the node: the tester's transport, not a finding.
        ctx.error(f"the emulated child could not send the query back to the node: {unsent[0]}")
    if len(received) != 1:
        ctx.fail(
            f"a query the child sent back to the node with the node's id in X-Route was "
            f"forwarded to the child {len(received)} times; expected once, the looped request "
            f"answered 508 LOOP_DETECTED"
        )
    # The answer to the looped request is judged where the child received it; what reaches the
    # caller after relaying is ATS-CAS-04's concern.
    if not looped or looped[0] != (508, "LOOP_DETECTED"):
        got = f"{looped[0][0]} {looped[0][1] or ''}".strip() if looped else "no answer"
        ctx.fail(
            f"the query for {code} the child sent back with X-Route holding the node was "
            f"answered {got}; expected 508 LOOP_DETECTED (the caller got {answer_text(ex)})"
        )
    ctx.note(f"{code}: the child's looped request was answered 508, forwarded once")


# ATS-CAS-08 ------------------------------------------------------------------------------------


@check("ATS-CAS-08")
@witnessed
def failing_next_hop_answered(ctx: CheckContext) -> None:
    """A refusing, 401, failing or non-ATS next hop gives 502, a silent one 504, within 12 s,
    and the node stays healthy."""
    ctx, hood = view(ctx).provoking(
        "a real neighbour cannot be made to refuse, fail, answer garbage or hang"
    )
    within = float(ctx.params["answer_within_s"])
    cases = [
        ("refusing the connection", Behaviour(mode="refuse"), 502, "UPSTREAM_UNAVAILABLE"),
        (
            "answering 401",
            Behaviour(mode="error", status=401, code="UNAUTHENTICATED"),
            502,
            "UPSTREAM_UNAVAILABLE",
        ),
        (
            "answering 500",
            Behaviour(mode="error", status=500, code="INTERNAL_ERROR"),
            502,
            "UPSTREAM_UNAVAILABLE",
        ),
        ("answering a non-ATS body", Behaviour(mode="garbage"), 502, "UPSTREAM_UNAVAILABLE"),
        ("not answering", Behaviour(mode="hang"), 504, "UPSTREAM_TIMEOUT"),
    ]
    timings = []
    with forwarding(ctx, hood) as forwarded:
        neighbour = hood.emulated(forwarded.role)
        code = forwarded.code
        for label, behaviour, status, error in cases:
            what = f"a query forwarded to a {forwarded.role} {label}"
            with neighbour.behaving(replace(behaviour, holds=frozenset({code}))):
                ex = query(ctx, code, timeout=within + 3)
            if ex.status is None or ex.elapsed_s > within:
                ctx.fail(
                    f"{what} got {answer_text(ex)} after {ex.elapsed_s:.1f} s; expected "
                    f"{status} {error} within {within:g} s"
                )
            expect_status(ex, status, error, what=what, refused_is_finding=True)
            timings.append(f"{label}: {ex.status} in {ex.elapsed_s:.1f} s")
    health = ctx.client.get(ats.HEALTH, app=None, allow_transport_error=True)
    expect_status(health, 200, what="health after the failing next hops")
    ctx.note("; ".join(timings))


# ATS-CAS-09 ------------------------------------------------------------------------------------


@check("ATS-CAS-09")
@witnessed
def forwarded_request_signed_by_node(ctx: CheckContext) -> None:
    """A forwarded request carries the forwarding node's own signature, never the caller's."""
    ctx, hood = view(ctx).provoking(
        "the request the node forwards to a real neighbour is not observable"
    )
    caller = ctx.target.credential("consumer")
    with forwarding(ctx, hood) as forwarded:
        code, path = forwarded.code, ats.share_query_path(forwarded.code)
        body = json.dumps(QUERY_BODY).encode("utf-8")
        nonce = uuid.uuid4().hex
        headers = ctx.client.signed_headers("consumer", "POST", path, body, nonce=nonce)
        headers["Content-Type"] = "application/json"
        started = time.time()
        ex = ctx.client.raw("POST", path, headers=headers, body=body)
        records = hood.received(forwarded.role, code, started)
    if not records:
        ctx.fail(f"the query for {code} was answered {answer_text(ex)} and never forwarded")
    record = records[-1]
    spec = forwarded.spec
    leaked = [
        name
        for name, mine in ((ats.X_APP_ID, caller.app_id), (ats.X_NONCE, nonce))
        if record.header(name) == mine
    ]
    if leaked:
        ctx.fail(
            f"the forwarded request carries the caller's {' and '.join(leaked)}; expected "
            f"the node's own signature headers"
        )
    if record.stale:
        ctx.fail(f"the {spec.role} refused the forwarded request: {record.stale}")
    if not record.verified:
        ctx.fail(
            f"the forwarded request's signature does not verify with the node's credential "
            f"at the {spec.role} (X-App-Id {record.header(ats.X_APP_ID)!r}, expected "
            f"{spec.candidate.app_id!r})"
        )
    ctx.note(f"forwarded to the {spec.role} signed as {spec.candidate.app_id}")
