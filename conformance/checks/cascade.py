"""ATS chapter 8 — cascade between levels (逐级对接): catalog aggregation and routing.

The checks stand the candidate between its neighbours. With emulated neighbours
(``conformance.neighbours``) they see every request the candidate sends up or down and can make
a neighbour refuse, fail, hang or loop. In live mode (``neighbours.live``: the real parent and
child of a topology) they judge what the candidate's answers and the real parent's catalog
show; what only a misbehaving neighbour could provoke, or only the next hop could see, they
judge with the target's ``emulated_child``, a further child the candidate is wired to, or
report as not assessed, with the reason, when the file names none. A clause that applies to the
node's level but needs a neighbour the target file does not name is not assessed either: the
run cannot certify without it.
"""

from __future__ import annotations

import copy
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from conformance import compare, schemas
from conformance.checks import CheckContext, CheckFunction, Inconclusive, check
from conformance.checks._catalog_walk import CatalogWalk
from conformance.checks._expect import answer_text, expect_status, request_text
from conformance.client import EVIDENCE_BODY, Exchange, NodeClient
from conformance.neighbours import (
    Behaviour,
    EmulatedNeighbour,
    RecordedRequest,
    error_body,
    share_answer,
)
from conformance.target import NeighbourSpec

PUSH_PATH = "/api/v1/cascade/catalog"
SYNC_PATH = "/api/v1/cascade/sync"
SHARE_PREFIX = "/api/v1/share/"
# The body every routed query of these checks carries; the next hop must receive it unchanged.
QUERY_BODY = {"page": 1, "size": 5}
# How many requests received by the emulated neighbours one clause's evidence shows at most.
_RECEIVED_SHOWN = 40
# How often a poll for a change at the parent looks again (ATS-CAS-10).
_POLL_S = 0.1
# A classification code for codes no node of the run holds (ATS §4: 类 1, 项 01, 目 001).
_UNKNOWN_CLASS = "101001"


def share_path(code: str) -> str:
    """The share query path of ``code`` (ATS §5; the slash of the code kept as it is)."""
    return f"{SHARE_PREFIX}{code}/query"


def route_ids(value: str | None) -> list[str]:
    """The node ids of an ``X-Route`` value: a comma-separated list, whitespace allowed."""
    return compare.route_ids(value)


def in_subtree(node_id: str, root: str) -> bool:
    """``node_id`` lies in the subtree of ``root`` (ATS §8): the root itself or, for a provincial
    root ``PP0000``, a division code with the same ``PP``."""
    if node_id == root:
        return True
    return (
        len(root) == 6
        and root.endswith("0000")
        and len(node_id) == 6
        and node_id.isdigit()
        and node_id[:2] == root[:2]
    )


def _live(ctx: CheckContext) -> bool:
    return bool(ctx.target.neighbours and ctx.target.neighbours.live)


def _with_emulated_child(ctx: CheckContext, why: str) -> CheckContext:
    """Live mode: the check's context with the target's ``emulated_child`` as the candidate's
    only neighbour, for what a real neighbour cannot show (``why``); not assessed when the
    target file names none."""
    neighbours = ctx.target.neighbours
    if neighbours is None or neighbours.emulated_child is None:
        ctx.not_assessed(
            f"live mode: {why}, and the target file names no neighbours.emulated_child (a "
            f"child the candidate is wired to, emulated by the suite)"
        )
    spare = neighbours.emulated_child
    target = replace(ctx.target, neighbours=neighbours.emulated())
    ctx.note(f"live mode: judged with the emulated child {spare.node_id} at {spare.listen}")
    return replace(ctx, target=target, client=ctx.client.for_target(target))


def _spec(ctx: CheckContext, role: str, purpose: str) -> NeighbourSpec:
    """The target's ``role`` neighbour; not assessed when the target names none.

    A clause that does not apply to the node's level never runs (the profiles mark it), so a
    missing neighbour here is a gap of the target file, not a reason to pass the clause by.
    """
    neighbours = ctx.target.neighbours
    spec = getattr(neighbours, role) if neighbours is not None else None
    if spec is None:
        kind = "its real" if _live(ctx) else "an emulated"
        ctx.not_assessed(
            f"the target file names no neighbours.{role}: {ctx.clause.id} needs {kind} "
            f"{role} {purpose}"
        )
    return spec


def _forwarding_roles(ctx: CheckContext) -> list[str]:
    """The roles of the target's neighbours the node may forward to; not assessed when none."""
    neighbours = ctx.target.neighbours
    roles = [r for r in ("parent", "child") if neighbours and getattr(neighbours, r)]
    if not roles:
        ctx.not_assessed(
            f"the target file names neither neighbours.parent nor neighbours.child: "
            f"{ctx.clause.id} needs a neighbour the candidate forwards queries to"
        )
    return roles


def _emulated(ctx: CheckContext, role: str) -> EmulatedNeighbour:
    """The running emulated ``role`` neighbour (never in live mode), named by the target."""
    found = getattr(ctx.neighbours, role) if ctx.neighbours is not None else None
    if found is None or not found.serving:
        ctx.error(f"the emulated {role} neighbour is not running")
    return found


def _received_entry(
    ctx: CheckContext, neighbour: EmulatedNeighbour, rec: RecordedRequest
) -> dict[str, Any]:
    """The evidence entry of a request an emulated neighbour received, scrubbed like the
    client's exchanges (the run's secrets removed; ``X-Signature`` masked when received)."""
    scrub = ctx.evidence.scrub
    by = f"the emulated {neighbour.spec.role} {neighbour.spec.node_id}"
    checked = "signature verified" if rec.verified else "signature not verified"
    if rec.stale:
        checked += f", refused: {rec.stale}"
    answered = f"answered {rec.status}" if rec.status else "not answered"
    return {
        "received_by": by,
        "method": rec.method,
        "target": scrub(rec.target),
        "request_headers": {k: scrub(v) for k, v in rec.headers.items()},
        "request_body": scrub(rec.body[:EVIDENCE_BODY].decode("utf-8", "replace")),
        "request_body_size": len(rec.body),
        "verified": rec.verified,
        "stale": rec.stale,
        "status": rec.status or None,
        "summary": scrub(f"received by {by}: {rec.method} {rec.target} ({checked}, {answered})"),
    }


def _add_received(
    ctx: CheckContext, since: float
) -> list[tuple[RecordedRequest, EmulatedNeighbour]]:
    """Adds what the emulated neighbours received since ``since`` to the clause's evidence, and
    answers it."""
    if ctx.neighbours is None:
        return []
    received = sorted(
        ((r, n) for n in ctx.neighbours.all() for r in n.recorded("", since)),
        key=lambda pair: pair[0].received_at,
    )
    for rec, neighbour in received[:_RECEIVED_SHOWN]:
        ctx.evidence.entries.append(_received_entry(ctx, neighbour, rec))
    if len(received) > _RECEIVED_SHOWN:
        ctx.note(
            f"{len(received) - _RECEIVED_SHOWN} more requests received by the emulated "
            f"neighbours are not shown"
        )
    return received


def _witnessed(function: CheckFunction) -> CheckFunction:
    """The check, its evidence holding every request the emulated neighbours received while it
    ran, whatever its outcome: what the candidate pushed or forwarded is what its verdict rests
    on (ATS §8)."""

    @functools.wraps(function)
    def witnessed(ctx: CheckContext) -> None:
        since = time.time()
        received: list[tuple[RecordedRequest, EmulatedNeighbour]] = []
        try:
            function(ctx)
        finally:
            received = _add_received(ctx, since)
        # ATS chapter 3 holds for the node's own pushes and forwarded queries too (ATS-AUTH-04/05):
        # the check that saw a stale one reports it, whatever it judged otherwise.
        stale = [(r, n) for r, n in received if r.stale]
        if stale:
            rec, neighbour = stale[0]
            ctx.fail(
                f"the emulated {neighbour.spec.role} refused {len(stale)} request(s) of the "
                f"node, e.g. {rec.method} {rec.target}: {rec.stale}"
            )

    return witnessed


def _catalog(
    ctx: CheckContext, scope: str, client: NodeClient | None = None, app: str = "consumer"
) -> dict[str, dict[str, Any]]:
    """The catalog in ``scope`` by resource code, walked page by page (ATS §4)."""
    walk = CatalogWalk(ctx, scope=scope, client=client, app=app)
    return {str(e.get("resource_code")): e for e in walk}


def _held_from(
    subtree: Mapping[str, dict[str, Any]], local: Mapping[str, Any], child: str
) -> dict[str, dict[str, Any]]:
    """The entries of the subtree catalog the candidate holds from ``child`` (ATS §8)."""
    return {
        code: entry
        for code, entry in subtree.items()
        if code not in local and in_subtree(str(entry.get("node_id")), child)
    }


def _difference(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """None when two catalogs are equal, else the codes added, removed and changed."""
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    # Entries compare on the members ATS §4 defines, updated_at as an instant (ATS-API-09).
    changed = sorted(
        c for c in before.keys() & after.keys() if not compare.same_entry(before[c], after[c])
    )
    parts = [
        f"{label} {', '.join(codes[:5])}"
        for label, codes in (("added", added), ("removed", removed), ("changed", changed))
        if codes
    ]
    return "; ".join(parts) or None


def _fresh_codes(taken: Sequence[str], owner: str, count: int, classification: str) -> list[str]:
    """``count`` codes in ``owner``'s block (its first 4 digits) that collide with nothing."""
    block = owner[:4] if owner[:4].isdigit() else "9999"
    codes = []
    for n in range(99, -1, -1):
        code = f"{classification}/{block}{n:02d}"
        if code not in taken:
            codes.append(code)
        if len(codes) == count:
            return codes
    raise Inconclusive(f"no free resource code in the block {block} of node {owner}")


def _generated(
    ctx: CheckContext,
    local: Mapping[str, dict[str, Any]],
    subtree: Mapping[str, Any],
    owner: str,
    count: int,
) -> list[dict[str, Any]]:
    """Entries valid per the ATS §4 table, held by ``owner``, with codes no node holds.

    Each is a copy of a valid local entry of the candidate (so that the data stays in the
    candidate's own catalog, not in the suite) under a fresh code, ``node_id`` ``owner``.
    """
    templates = [e for e in local.values() if not schemas.validation_errors("catalog-entry", e)]
    if not templates:
        ctx.error("the node's local catalog holds no valid entry to model pushed entries on")
    template = templates[0]
    classification = str(template["resource_code"]).split("/", 1)[0]
    made = []
    for code in _fresh_codes([*subtree, *local], owner, count, classification):
        entry = copy.deepcopy(template)
        entry.update(resource_code=code, node_id=owner, related_codes=[])
        made.append(entry)
    return made


@dataclass
class _AsChild:
    """Pushes to the candidate as its child ``spec`` (ATS §8), with its own seq counter."""

    ctx: CheckContext
    spec: NeighbourSpec
    seq: int

    def push(
        self,
        entries: Sequence[Mapping[str, Any]],
        *,
        full: bool = True,
        deleted: Sequence[str] = (),
        seq: int | None = None,
        app: str = "as_child",
        source: str | None = None,
    ) -> Exchange:
        """Sends one push; ``seq`` defaults to one above the previous one."""
        self.seq = seq if seq is not None else self.seq + 1
        body = {
            "source_node_id": source or self.spec.node_id,
            "seq": self.seq,
            "full": full,
            "entries": list(entries),
            "deleted": list(deleted),
        }
        return self.ctx.client.post(PUSH_PATH, app=app, json=body)

    def accepted(self, ex: Exchange, what: str) -> None:
        """The push was answered 200 ``{"accepted": n}``."""
        expect_status(ex, 200, what=what)
        if schemas.validation_errors("cascade-push-answer", ex.json()):
            self.ctx.fail(f'{what} was answered {ex.body[:200]!r}; expected {{"accepted": n}}')


def _as_child(ctx: CheckContext, spec: NeighbourSpec) -> _AsChild:
    # A full push is accepted with any seq (ATS §8): a high, run-specific start keeps the
    # incremental pushes of these checks apart from those of a real child.
    start = ctx.run.cached("cascade.child_seq", lambda: 1000 + int(time.time()) % 100_000)
    return _AsChild(ctx, spec, int(start))


@contextmanager
def _child_state(ctx: CheckContext, spec: NeighbourSpec) -> Iterator[tuple[_AsChild, dict]]:
    """The pusher and the entries held from the child before; afterwards, the child's entries
    are what they were (one full push of them), so that later checks see the catalog as it was."""
    local = _catalog(ctx, "local")
    subtree = _catalog(ctx, "subtree")
    held = _held_from(subtree, local, spec.node_id)
    pusher = _as_child(ctx, spec)
    try:
        yield pusher, {"local": local, "subtree": subtree, "held": held}
    finally:
        restore = pusher.push(list(held.values()))
        ctx.run.remember("cascade.child_seq", pusher.seq + 1)
        if restore.status != 200:
            ctx.note(f"restoring the child's entries was answered {answer_text(restore)}")


def _query(
    ctx: CheckContext,
    code: str,
    *,
    app: str = "consumer",
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Exchange:
    """A share query for ``code`` with a fresh ``X-Request-Id``; no answer is an exchange with
    ``error`` set."""
    sent = {"X-Request-Id": f"cas-{uuid.uuid4().hex[:24]}", **(headers or {})}
    return ctx.client.post(
        share_path(code),
        app=app,
        json=QUERY_BODY,
        headers=sent,
        timeout=(3.0, timeout) if timeout else None,
        allow_transport_error=True,
    )


def _forwarded(neighbour: EmulatedNeighbour, code: str, since: float) -> list[RecordedRequest]:
    """The share queries for ``code`` the neighbour received since ``since``."""
    wanted = {share_path(code), share_path(code.replace("/", "%2F"))}
    return [r for r in neighbour.recorded(SHARE_PREFIX, since) if r.path in wanted]


def _sent_request_id(ex: Exchange) -> str | None:
    return next((v for k, v in ex.request_headers.items() if k.lower() == "x-request-id"), None)


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
    app_id = rec.header("X-App-Id")
    if not rec.verified:
        problems.append(
            f"it does not carry the node's own valid signature at the {spec.role} (X-App-Id "
            f"{app_id!r}, expected {spec.candidate.app_id!r}; ATS-CAS-09)"
        )
    if rec.stale:
        problems.append(f"the {spec.role} refused it: {rec.stale}")
    if rec.json() != QUERY_BODY:
        problems.append(f"its body is {rec.body[:120]!r}, expected the caller's {QUERY_BODY}")
    sent_id = _sent_request_id(ex)
    if rec.header("X-Request-Id") != sent_id:
        problems.append(f"X-Request-Id is {rec.header('X-Request-Id')!r}, expected {sent_id!r}")
    if rec.header("X-Hop-Limit") != str(hop_limit):
        problems.append(f"X-Hop-Limit is {rec.header('X-Hop-Limit')!r}, expected {hop_limit}")
    if rec.header("X-Origin-Node") != own:
        problems.append(f"X-Origin-Node is {rec.header('X-Origin-Node')!r}, expected {own!r}")
    if rec.header("X-Origin-App") != caller_app:
        problems.append(f"X-Origin-App is {rec.header('X-Origin-App')!r}, expected {caller_app!r}")
    # The caller sent no X-Route: the forwarded route is the node alone.
    if route_ids(rec.header("X-Route")) != [own]:
        problems.append(f"X-Route is {rec.header('X-Route')!r}, expected {own!r}")
    return problems


def _outside_code(subtree: Mapping[str, Any]) -> str:
    """A well-formed code outside the candidate's subtree catalog (ATS-CAS-05)."""
    for n in range(999_999, 999_000, -1):
        code = f"{_UNKNOWN_CLASS}/{n:06d}"
        if code not in subtree:
            return code
    raise Inconclusive("no free resource code outside the node's subtree catalog")


@contextmanager
def _role_code(ctx: CheckContext, role: str) -> Iterator[str]:
    """A code the node should forward to its ``role`` neighbour: one outside its subtree for
    the parent, one held from the child for the child."""
    if role == "parent":
        yield _outside_code(_catalog(ctx, "subtree"))
        return
    with _child_code(ctx, _spec(ctx, "child", "holding the codes routed down")) as code:
        yield code


@contextmanager
def _forwarding(ctx: CheckContext) -> Iterator[tuple[EmulatedNeighbour, str]]:
    """An emulated neighbour and a code the node has just forwarded to it: the parent with a
    code outside the subtree, else (or when the node does not route up) the child with a code
    it holds. A node that forwards to neither cannot be judged here (ATS-CAS-04/05 judge it)."""
    tried = []
    for role in _forwarding_roles(ctx):
        neighbour = _emulated(ctx, role)
        with _role_code(ctx, role) as code:
            with neighbour.behaving(Behaviour(holds=frozenset({code}))):
                started = time.time()
                probe = _query(ctx, code)
                reached = bool(_forwarded(neighbour, code, started))
            if reached:
                yield neighbour, code
                return
        tried.append(f"{code} (for the {role}) was answered {answer_text(probe)}")
    ctx.error(f"the node forwarded no query to a neighbour: {'; '.join(tried)}")


@contextmanager
def _holding(ctx: CheckContext) -> Iterator[tuple[EmulatedNeighbour, str]]:
    """``_forwarding``, the neighbour answering queries for the code normally for the block."""
    with (
        _forwarding(ctx) as (neighbour, code),
        neighbour.behaving(Behaviour(holds=frozenset({code}))),
    ):
        yield neighbour, code


@contextmanager
def _child_code(ctx: CheckContext, spec: NeighbourSpec) -> Iterator[str]:
    """A code of the candidate's subtree catalog held from the child ``spec``; when it holds
    none, one pushed as the child for the block and removed after it."""
    local = _catalog(ctx, "local")
    subtree = _catalog(ctx, "subtree")
    held = _held_from(subtree, local, spec.node_id)
    if held:
        yield sorted(held)[0]
        return
    with _child_state(ctx, spec) as (pusher, _):
        entry = _generated(ctx, local, subtree, spec.node_id, 1)[0]
        pusher.accepted(pusher.push([entry]), "a full push of the child")
        yield str(entry["resource_code"])


def _expect_routed_answer(
    ctx: CheckContext, ex: Exchange, route: Sequence[str], *, what: str
) -> None:
    """The answer came from the end of ``route``: its ``X-Route`` starts with it."""
    got = route_ids(ex.headers.get("X-Route"))
    if got[: len(route)] != list(route):
        ctx.fail(
            f"{what} was answered {answer_text(ex)} with X-Route {ex.headers.get('X-Route')!r}; "
            f"expected a route starting {','.join(route)!r} ({request_text(ex)})"
        )


def _peer_client(ctx: CheckContext, spec: NeighbourSpec) -> NodeClient:
    """A client of the real neighbour ``spec`` signing with the candidate's credential there."""
    node = replace(ctx.target.node, base_url=spec.url, ca_bundle=None, http_url=None)
    target = replace(ctx.target, node=node, apps={"candidate": spec.candidate})
    return NodeClient(target, ctx.evidence)


def _parent_view(ctx: CheckContext, spec: NeighbourSpec) -> dict[str, dict[str, Any]]:
    """The real parent's subtree catalog entries of the candidate's subtree (live mode)."""
    own = ctx.target.node.node_id
    client = _peer_client(ctx, spec)
    try:
        seen = _catalog(ctx, "subtree", client=client, app="candidate")
    finally:
        client.close()
    return {c: e for c, e in seen.items() if in_subtree(str(e.get("node_id")), own)}


# ATS-CAS-01 ------------------------------------------------------------------------------------


def _pushes(parent: EmulatedNeighbour, since: float = 0.0) -> list[RecordedRequest]:
    return [r for r in parent.recorded(PUSH_PATH, since) if r.method == "POST"]


def _sync(ctx: CheckContext) -> Exchange:
    ex = ctx.client.post(SYNC_PATH, app="admin", json={}, timeout=(3.0, 15.0))
    return expect_status(ex, 200, what="POST /api/v1/cascade/sync")


@check("ATS-CAS-01")
@_witnessed
def upward_sync_pushes_full_catalog(ctx: CheckContext) -> None:
    """On a sync trigger the node pushes its parent a full, signed, valid push of exactly its
    subtree catalog, seq one above its previous push, within 10 s."""
    spec = _spec(ctx, "parent", "to receive the node's sync push")
    within = float(ctx.params["push_within_s"])
    if _live(ctx):
        _sync(ctx)
        mine = _catalog(ctx, "subtree")
        seen = _parent_view(ctx, spec)
        diff = _difference(mine, seen)
        if diff:
            ctx.fail(
                f"after the sync the parent {spec.node_id} holds, of the node's subtree, "
                f"other entries than the node's subtree catalog: {diff}"
            )
        ctx.note(
            "live mode: the push itself (signature, full, seq) is not observable; the "
            "parent's catalog holds exactly the node's subtree catalog"
        )
        return
    parent = _emulated(ctx, "parent")
    push: dict[str, Any] = {}
    chain: list[int] = []
    # Without a push received before, a second sync gives the "previous push" to compare with.
    for _ in range(2):
        started = time.time()
        _sync(ctx)
        new = _pushes(parent, started)
        if not new:
            ctx.fail(f"the sync was answered 200 but the parent {spec.node_id} received no push")
        record = new[-1]
        if record.received_at - started > within:
            ctx.fail(
                f"the push arrived {record.received_at - started:.1f} s after the sync; "
                f"expected within {within:g} s"
            )
        if not record.verified:
            ctx.fail(
                f"the push does not carry the node's valid signature with its credential "
                f"at the parent (X-App-Id {record.header('X-App-Id')!r})"
            )
        if record.stale:
            ctx.fail(f"the parent refused the push: {record.stale}")
        push = record.json()
        problems = schemas.validation_errors("cascade-push", push)
        if problems:
            ctx.fail(f"the push is not a cascade push: {problems[0]}")
        if push.get("full") is not True:
            ctx.fail(f"the push after a sync has full {push.get('full')!r}; expected true")
        if push.get("source_node_id") != ctx.target.node.node_id:
            ctx.fail(
                f"the push names source_node_id {push.get('source_node_id')!r}; expected "
                f"{ctx.target.node.node_id!r}"
            )
        earlier: list[int] = [
            int(p["seq"])
            for r in _pushes(parent)
            if r is not record
            and r.received_at <= record.received_at
            and isinstance(p := r.json(), dict)
            and compare.is_integer(p.get("seq"))
        ]
        if earlier:
            chain = [max(earlier), int(push["seq"])]
            break
    if chain[1] != chain[0] + 1:
        ctx.fail(
            f"the sync push has seq {chain[1]}, the push before it {chain[0]}; expected "
            f"{chain[0] + 1}"
        )
    bad = [
        f"{e.get('resource_code')}: {errors[0]}"
        for e in push["entries"]
        if (errors := schemas.validation_errors("catalog-entry", e))
    ]
    if bad:
        ctx.fail(f"{len(bad)} entries of the push are invalid, e.g. {bad[0]}")
    pushed = {str(e.get("resource_code")): e for e in push["entries"]}
    diff = _difference(_catalog(ctx, "subtree"), pushed)
    if diff:
        ctx.fail(f"the push differs from the node's subtree catalog: {diff}")
    ctx.note(f"sync pushes with seq {', '.join(map(str, chain))}; {len(pushed)} entries")


# ATS-CAS-02 ------------------------------------------------------------------------------------


def _expect_catalog(
    ctx: CheckContext, present: Sequence[str], absent: Sequence[str], child: str, when: str
) -> None:
    subtree = _catalog(ctx, "subtree")
    local = _catalog(ctx, "local")
    for code in present:
        if code not in subtree:
            ctx.fail(f"{when}, {code} is missing from scope=subtree")
        if subtree[code].get("node_id") != child:
            ctx.fail(
                f"{when}, {code} shows node_id {subtree[code].get('node_id')!r}; expected {child!r}"
            )
        if code in local:
            ctx.fail(f"{when}, {code} (pushed by the child) appears in scope=local")
    for code in absent:
        if code in subtree:
            ctx.fail(f"{when}, {code} is still in scope=subtree; expected it gone")


@check("ATS-CAS-02")
@_witnessed
def child_push_accepted_and_aggregated(ctx: CheckContext) -> None:
    """Pushes of a registered child are accepted and aggregated in scope=subtree only; deletions
    and codes missing from a later full push disappear; an out-of-order incremental push is 409."""
    spec = _spec(ctx, "child", "to push to the candidate")
    with _child_state(ctx, spec) as (pusher, state):
        held = list(state["held"].values())
        a, b, c = _generated(ctx, state["local"], state["subtree"], spec.node_id, 3)
        codes = [str(e["resource_code"]) for e in (a, b, c)]
        pusher.accepted(pusher.push([*held, a, b]), "a valid full push of the child")
        _expect_catalog(ctx, codes[:2], [], spec.node_id, "after a full push")
        pusher.accepted(
            pusher.push([c], full=False, deleted=[codes[0]]), "an incremental push in order"
        )
        _expect_catalog(
            ctx, codes[1:], [codes[0]], spec.node_id, "after an incremental push deleting it"
        )
        skipped = pusher.seq + 2
        ex = pusher.push([], full=False, deleted=[codes[1]], seq=skipped)
        expect_status(
            ex, 409, "CONFLICT", what=f"an incremental push with seq {skipped} after {skipped - 2}"
        )
        _expect_catalog(ctx, codes[1:2], [], spec.node_id, "after a refused push")
        pusher.accepted(pusher.push([*held, c]), "a later full push")
        _expect_catalog(ctx, codes[2:], [codes[1]], spec.node_id, "after a full push without it")
    ctx.note(f"pushed as child {spec.node_id}: {', '.join(codes)}; the child's entries restored")


# ATS-CAS-03 ------------------------------------------------------------------------------------


@check("ATS-CAS-03")
def improper_child_push_refused(ctx: CheckContext) -> None:
    """Foreign pushes, another source_node_id and entries outside the child's subtree are 403,
    invalid entries 400, colliding codes 409, and none changes the catalog."""
    spec = _spec(ctx, "child", "to push improper catalogs to the candidate")
    neighbours = ctx.target.neighbours
    with _child_state(ctx, spec) as (pusher, state):
        before = state["subtree"]
        held = list(state["held"].values())
        fresh, outside, invalid, colliding = _generated(
            ctx, state["local"], before, spec.node_id, 4
        )
        other_pp = "11" if spec.node_id[:2] != "11" else "12"
        outside["node_id"] = other_pp + spec.node_id[2:6]
        del invalid["update_cycle"]
        colliding["resource_code"] = sorted(state["local"])[0]
        cases: list[tuple[str, Callable[[], Exchange], int, str]] = [
            (
                "a push naming another source_node_id",
                lambda: pusher.push([*held, fresh], source=other_pp + spec.node_id[2:6]),
                403,
                "FORBIDDEN",
            ),
            (
                "a push with an entry outside the child's subtree",
                lambda: pusher.push([*held, fresh, outside]),
                403,
                "FORBIDDEN",
            ),
            (
                "a push with an invalid entry (no update_cycle)",
                lambda: pusher.push([*held, fresh, invalid]),
                400,
                "INVALID_REQUEST",
            ),
            (
                "a push with a code the node holds locally",
                lambda: pusher.push([*held, fresh, colliding]),
                409,
                "CONFLICT",
            ),
        ]
        if neighbours is not None and neighbours.parent is not None:
            cases.insert(
                0,
                (
                    "a push signed by the parent's node app",
                    lambda: pusher.push([*held, fresh], app="as_parent"),
                    403,
                    "FORBIDDEN",
                ),
            )
        else:
            ctx.note("no parent credential in the target file: a foreign signer is not tried")
        for what, send, status, code in cases:
            expect_status(send(), status, code, what=what, refused_is_finding=True)
            diff = _difference(before, _catalog(ctx, "subtree"))
            if diff:
                ctx.fail(f"{what} was refused but changed the subtree catalog: {diff}")
    ctx.note(f"{len(cases)} improper pushes refused, the catalog unchanged after each")


# ATS-CAS-04 ------------------------------------------------------------------------------------


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
    if route_ids(ex.headers.get("X-Route")) != route_ids(route):
        problems.append(f"X-Route {ex.headers.get('X-Route')!r}, expected {route!r}")
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


def _live_downward(ctx: CheckContext, spec: NeighbourSpec) -> None:
    """Live mode: a query for an open resource of the real child is answered 200 by the child,
    through the node (X-Route); the forwarded request itself is not observable."""
    own = ctx.target.node.node_id
    held = _held_from(_catalog(ctx, "subtree"), _catalog(ctx, "local"), spec.node_id)
    open_codes = sorted(c for c, e in held.items() if _open_to_consumers(e))
    if not open_codes:
        ctx.not_assessed(
            f"live mode: the child {spec.node_id} holds no resource open to consumers, so no "
            f"query routed down can be answered"
        )
    code = open_codes[0]
    ex = _query(ctx, code)
    what = f"a query for {code}, an open resource of the child"
    expect_status(ex, 200, what=what)
    _expect_routed_answer(ctx, ex, [own, spec.node_id], what=what)
    shown = [f"{code} answered 200"]
    # An error of the child relayed: a CONDITIONAL resource without a subscription of the pair
    # (X-Origin-Node, X-Origin-App) at the owner is 403 SUBSCRIPTION_REQUIRED (ATS §8).
    conditional = sorted(
        c
        for c, e in held.items()
        if (e.get("share") or {}).get("type") == "CONDITIONAL"
        and (e.get("share") or {}).get("method") == "API"
    )
    if conditional:
        ex = _query(ctx, conditional[0])
        what = f"a query for {conditional[0]}, a CONDITIONAL resource of the child"
        expect_status(ex, 403, "SUBSCRIPTION_REQUIRED", what=what)
        _expect_routed_answer(ctx, ex, [own, spec.node_id], what=what)
        shown.append(f"{conditional[0]} answered 403 SUBSCRIPTION_REQUIRED")
    ctx.note(
        f"live mode: {', '.join(shown)}, both through the child; the forwarded request is not "
        f"observable"
    )


def _routed_as_described(
    ctx: CheckContext, neighbour: EmulatedNeighbour, code: str, where: str
) -> None:
    """A query for ``code`` reaches ``neighbour`` as ATS §8 describes (own signature, body and
    X-Request-Id kept, hop limit decremented, origin headers and route set), and the
    neighbour's answers, a success and an error, are relayed unchanged with their X-Route."""
    spec = neighbour.spec
    route = f"{ctx.target.node.node_id},{spec.node_id}"
    default_hops = int(ctx.params["default_hop_limit"])
    caller = ctx.target.credential("consumer").app_id
    with neighbour.behaving(Behaviour(holds=frozenset({code}))):
        started = time.time()
        ex = _query(ctx, code)
        records = _forwarded(neighbour, code, started)
        if not records:
            ctx.fail(
                f"a query for {code}, {where}, was answered {answer_text(ex)} and never "
                f"reached the {spec.role} {spec.node_id}"
            )
        problems = _forward_problems(
            ctx, records[-1], spec, ex, hop_limit=default_hops, caller_app=caller
        )
        if problems:
            ctx.fail(f"the query forwarded to the {spec.role} for {code}: {'; '.join(problems)}")
        _expect_relayed(
            ctx, ex, 200, share_answer(code), route, None, f"the {spec.role}'s query answer"
        )
    limited = Behaviour(mode="error", status=429, code="RATE_LIMITED", retry_after="7")
    with neighbour.behaving(limited):
        ex = _query(ctx, code)
        expected = error_body(limited, _sent_request_id(ex) or "")
        _expect_relayed(ctx, ex, 429, expected, route, "7", f"the {spec.role}'s 429 answer")
    ctx.note(
        f"{code}: forwarded to the {spec.role} with X-Hop-Limit {default_hops}; 200 and 429 relayed"
    )


@check("ATS-CAS-04")
@_witnessed
def downward_routing_relays_answer(ctx: CheckContext) -> None:
    """A query for a child's resource is forwarded to the child as ATS §8 describes, and the
    child's answer, success or error, is relayed unchanged."""
    spec = _spec(ctx, "child", "to receive the queries the candidate routes down")
    if _live(ctx):
        _live_downward(ctx, spec)
        return
    child = _emulated(ctx, "child")
    with _child_code(ctx, spec) as code:
        _routed_as_described(ctx, child, code, f"held by child {spec.node_id}")


# ATS-CAS-05 ------------------------------------------------------------------------------------


def _from_parent_headers(ctx: CheckContext, spec: NeighbourSpec) -> dict[str, str]:
    """The routing headers of a query the parent forwards to the candidate (ATS §8)."""
    return {
        "X-Origin-Node": spec.node_id,
        "X-Origin-App": "cascade-check",
        "X-Route": spec.node_id,
        "X-Hop-Limit": "6",
    }


@check("ATS-CAS-05")
@_witnessed
def upward_routing_to_parent(ctx: CheckContext) -> None:
    """A code outside the subtree is forwarded to the parent, and its answer relayed; the same
    query received from the parent answers 404 without going back up."""
    spec = _spec(ctx, "parent", "to receive the queries the candidate routes up")
    own = ctx.target.node.node_id
    code = _outside_code(_catalog(ctx, "subtree"))
    if _live(ctx):
        ex = _query(ctx, code)
        what = f"a query for {code}, outside the node's subtree and held by no node"
        expect_status(ex, 404, "NOT_FOUND", what=what)
        _expect_routed_answer(ctx, ex, [own, spec.node_id], what=what)
        back = _query(ctx, code, app="as_parent", headers=_from_parent_headers(ctx, spec))
        expect_status(back, 404, "NOT_FOUND", what=f"a query for {code} received from the parent")
        if route_ids(back.headers.get("X-Route"))[-1:] != [own]:
            ctx.fail(
                f"a query received from the parent for {code} was answered with X-Route "
                f"{back.headers.get('X-Route')!r}; expected the node to answer it itself"
            )
        ctx.note("live mode: the forwarded request itself is not observable")
        return
    parent = _emulated(ctx, "parent")
    # ATS §8 routes up by the same rules as down: ATS-CAS-04's judgement, towards the parent.
    _routed_as_described(ctx, parent, code, "outside the node's subtree")
    with parent.behaving(Behaviour(holds=frozenset({code}))):
        # ATS-SHR-07: a code no node holds answers 404 where routing ends — here at the parent.
        unknown = _outside_code({**_catalog(ctx, "subtree"), code: None})
        ex = _query(ctx, unknown)
        expect_status(ex, 404, "NOT_FOUND", what=f"a query for {unknown}, which no node holds")
        _expect_routed_answer(ctx, ex, [own, spec.node_id], what=f"a query for {unknown}")
        started = time.time()
        back = _query(ctx, code, app="as_parent", headers=_from_parent_headers(ctx, spec))
        expect_status(back, 404, "NOT_FOUND", what=f"a query for {code} received from the parent")
        if _forwarded(parent, code, started):
            ctx.fail(f"a query received from the parent for {code} was forwarded back to it")
    ctx.note(f"{code} forwarded to the parent and relayed; from the parent it answers 404")


# ATS-CAS-06 ------------------------------------------------------------------------------------


def _not_forwarded(
    ctx: CheckContext, neighbour: EmulatedNeighbour, code: str, since: float, what: str
) -> None:
    if _forwarded(neighbour, code, since):
        ctx.fail(f"{what} was forwarded to the {neighbour.spec.role}; expected no forwarding")


def _live_forwarded(ctx: CheckContext) -> tuple[str, list[str]]:
    """Live mode: a code the node forwards, and the route its answer took: one outside the
    subtree through the parent, else one held from the child. A node that forwards neither
    cannot be judged here (ATS-CAS-04/05 judge it)."""
    neighbours = ctx.target.neighbours
    own = ctx.target.node.node_id
    tried = []
    for role in _forwarding_roles(ctx):
        spec = getattr(neighbours, role)
        with _role_code(ctx, role) as code:
            probe = _query(ctx, code)
        route = [own, spec.node_id]
        if route_ids(probe.headers.get("X-Route"))[:2] == route:
            return code, route
        tried.append(
            f"{code} (for the {role}) was answered {answer_text(probe)} with X-Route "
            f"{probe.headers.get('X-Route')!r}"
        )
    ctx.error(f"the node forwarded no query to a neighbour: {'; '.join(tried)}")


@check("ATS-CAS-06")
@_witnessed
def hop_limit_enforced(ctx: CheckContext) -> None:
    """X-Hop-Limit 1 answers 508 without forwarding; forwarded limits are one below the incoming
    value, never below 1; values outside 1..8 or not integers answer 400."""
    low, high = int(ctx.params["min_hop_limit"]), int(ctx.params["max_hop_limit"])
    invalid = [str(low - 1), str(high + 1), "x", "2.5"]
    if _live(ctx):
        code, route = _live_forwarded(ctx)
        ex = _query(ctx, code, headers={"X-Hop-Limit": str(low)})
        expect_status(
            ex, 508, "LOOP_DETECTED", what=f"a query needing forwarding with X-Hop-Limit {low}"
        )
        for value in invalid:
            ex = _query(ctx, code, headers={"X-Hop-Limit": value})
            expect_status(ex, 400, "INVALID_REQUEST", what=f"X-Hop-Limit {value!r}")
        ex = _query(ctx, code, headers={"X-Hop-Limit": str(low + 1)})
        _expect_routed_answer(ctx, ex, route, what=f"a query with X-Hop-Limit {low + 1}")
        ctx.note("live mode: the forwarded X-Hop-Limit value is not observable")
        return
    with _holding(ctx) as (neighbour, code):
        started = time.time()
        ex = _query(ctx, code, headers={"X-Hop-Limit": str(low)})
        expect_status(
            ex, 508, "LOOP_DETECTED", what=f"a query needing forwarding with X-Hop-Limit {low}"
        )
        _not_forwarded(ctx, neighbour, code, started, f"a query with X-Hop-Limit {low}")
        for value in invalid:
            started = time.time()
            ex = _query(ctx, code, headers={"X-Hop-Limit": value})
            expect_status(ex, 400, "INVALID_REQUEST", what=f"X-Hop-Limit {value!r}")
            _not_forwarded(ctx, neighbour, code, started, f"X-Hop-Limit {value!r}")
        seen = []
        for incoming in (low + 1, high, None):
            started = time.time()
            headers = {"X-Hop-Limit": str(incoming)} if incoming is not None else {}
            ex = _query(ctx, code, headers=headers)
            records = _forwarded(neighbour, code, started)
            expected = incoming - 1 if incoming else int(ctx.params["default_hop_limit"])
            got = records[-1].header("X-Hop-Limit") if records else None
            if got != str(expected):
                ctx.fail(
                    f"a query with X-Hop-Limit {incoming or 'absent'} was forwarded "
                    f"with X-Hop-Limit {got!r} ({answer_text(ex)}); expected {expected}"
                )
            seen.append(f"{incoming or 'absent'}→{got}")
    ctx.note(f"X-Hop-Limit {low} → 508, {', '.join(invalid)} → 400; forwarded {', '.join(seen)}")


# ATS-CAS-07 ------------------------------------------------------------------------------------


@check("ATS-CAS-07")
@_witnessed
def routing_loop_detected(ctx: CheckContext) -> None:
    """A query needing forwarding whose X-Route already holds the node answers 508 without
    forwarding."""
    own = ctx.target.node.node_id
    routes = [own, f"100000, {own}", f"{own},100000"]
    if _live(ctx):
        code, _ = _live_forwarded(ctx)
        for route in routes:
            ex = _query(ctx, code, headers={"X-Route": route})
            expect_status(ex, 508, "LOOP_DETECTED", what=f"a query with X-Route {route!r}")
        ctx.note("live mode: whether the node forwarded is seen only in its answer")
        return
    with _holding(ctx) as (neighbour, code):
        for route in routes:
            started = time.time()
            ex = _query(ctx, code, headers={"X-Route": route})
            expect_status(ex, 508, "LOOP_DETECTED", what=f"a query with X-Route {route!r}")
            _not_forwarded(ctx, neighbour, code, started, f"a query with X-Route {route!r}")
    ctx.note(f"X-Route {' | '.join(routes)} → 508 without forwarding")
    neighbours = ctx.target.neighbours
    if neighbours is not None and neighbours.child is not None:
        _child_sends_back(ctx, neighbours.child)


def _child_sends_back(ctx: CheckContext, spec: NeighbourSpec) -> None:
    """A child that sends a forwarded query back to the node (a loop between two nodes) gets
    508 from the node, which forwards it no second time."""
    child = _emulated(ctx, "child")
    with _child_code(ctx, spec) as code:
        loop = Behaviour(mode="loop", holds=frozenset({code}), loop_url=ctx.target.node.base_url)
        started = time.time()
        answered = len(child.loop_answers)
        with child.behaving(loop):
            ex = _query(ctx, code)
        received = _forwarded(child, code, started)
        looped = child.loop_answers[answered:]
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
@_witnessed
def failing_next_hop_answered(ctx: CheckContext) -> None:
    """A refusing, 401, failing or non-ATS next hop gives 502, a silent one 504, within 12 s,
    and the node stays healthy."""
    if _live(ctx):
        ctx = _with_emulated_child(
            ctx, "a real neighbour cannot be made to refuse, fail, answer garbage or hang"
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
    with _forwarding(ctx) as (neighbour, code):
        for label, behaviour, status, error in cases:
            what = f"a query forwarded to a {neighbour.spec.role} {label}"
            with neighbour.behaving(replace(behaviour, holds=frozenset({code}))):
                ex = _query(ctx, code, timeout=within + 3)
            if ex.status is None or ex.elapsed_s > within:
                ctx.fail(
                    f"{what} got {answer_text(ex)} after {ex.elapsed_s:.1f} s; expected "
                    f"{status} {error} within {within:g} s"
                )
            expect_status(ex, status, error, what=what, refused_is_finding=True)
            timings.append(f"{label}: {ex.status} in {ex.elapsed_s:.1f} s")
    health = ctx.client.get("/api/v1/health", app=None, allow_transport_error=True)
    expect_status(health, 200, what="health after the failing next hops")
    ctx.note("; ".join(timings))


# ATS-CAS-09 ------------------------------------------------------------------------------------


@check("ATS-CAS-09")
@_witnessed
def forwarded_request_signed_by_node(ctx: CheckContext) -> None:
    """A forwarded request carries the forwarding node's own signature, never the caller's."""
    if _live(ctx):
        ctx = _with_emulated_child(
            ctx, "the request the node forwards to a real neighbour is not observable"
        )
    caller = ctx.target.credential("consumer")
    with _holding(ctx) as (neighbour, code):
        body = json.dumps(QUERY_BODY).encode("utf-8")
        nonce = uuid.uuid4().hex
        headers = ctx.client.signed_headers("consumer", "POST", share_path(code), body, nonce=nonce)
        headers["Content-Type"] = "application/json"
        started = time.time()
        ex = ctx.client.raw("POST", share_path(code), headers=headers, body=body)
        records = _forwarded(neighbour, code, started)
    if not records:
        ctx.fail(f"the query for {code} was answered {answer_text(ex)} and never forwarded")
    record = records[-1]
    spec = neighbour.spec
    leaked = [
        name
        for name, mine in (("X-App-Id", caller.app_id), ("X-Nonce", nonce))
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
            f"at the {spec.role} (X-App-Id {record.header('X-App-Id')!r}, expected "
            f"{spec.candidate.app_id!r})"
        )
    ctx.note(f"forwarded to the {spec.role} signed as {spec.candidate.app_id}")


# ATS-CAS-10 / 11 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Propagation:
    """How long each kind of change pushed by the child took to reach the parent (None: it did
    not within the bound), and what was wrong at the candidate itself."""

    latencies: Mapping[str, float | None]
    problem: str | None
    bound_s: float


def _folded(parent: EmulatedNeighbour) -> dict[str, dict[str, Any]] | None:
    """What the emulated parent holds from the candidate: its accepted pushes applied in the
    order received (ATS §8: a full push replaces, an incremental one upserts and deletes);
    None before the first full push."""
    state: dict[str, dict[str, Any]] | None = None
    for record in _pushes(parent):
        push = record.json()
        if not record.verified or record.status != 200 or not isinstance(push, dict):
            continue
        entries = {
            str(e.get("resource_code")): e for e in push.get("entries", []) if isinstance(e, dict)
        }
        if push.get("full") is True:
            state = entries
        elif state is not None:
            state.update(entries)
            for code in push.get("deleted", []):
                state.pop(str(code), None)
    return state


def _matches(
    view: Mapping[str, dict[str, Any]] | None,
    expected: Mapping[str, dict[str, Any]],
    changed: Sequence[str],
) -> bool:
    """``view`` holds exactly the codes of ``expected``, the changed ones in their new version
    (compared by ``updated_at``, so that a node may re-serialize an entry)."""
    return (
        view is not None
        and view.keys() == expected.keys()
        and all(
            compare.same_value(view[c].get("updated_at"), expected[c].get("updated_at"))
            for c in changed
            if c in expected
        )
    )


def _measure_propagation(ctx: CheckContext, bound_s: float) -> _Propagation:
    parent_spec = _spec(ctx, "parent", "to receive the changes the candidate pushes on")
    spec = _spec(ctx, "child", "to push changes to the candidate")
    live = _live(ctx)
    parent = None if live else _emulated(ctx, "parent")
    if parent is not None and _folded(parent) is None:
        # The parent has seen no full push yet (it started after the node): a sync gives one.
        _sync(ctx)
    latencies: dict[str, float | None] = {}
    problem = None
    with _child_state(ctx, spec) as (pusher, state):
        held = list(state["held"].values())
        a, b = _generated(ctx, state["local"], state["subtree"], spec.node_id, 2)
        codes = [str(a["resource_code"]), str(b["resource_code"])]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        a_new = {**a, "updated_at": stamp if stamp != a.get("updated_at") else a["published_at"]}
        expected = dict(state["subtree"])
        pusher.accepted(pusher.push(held), "the child's full push of its entries")
        # Additions, then an update with a removal (incremental), then a removal by a full push.
        steps = [
            ("addition", lambda: pusher.push([a, b], full=False), {codes[0]: a, codes[1]: b}, []),
            (
                "update and removal",
                lambda: pusher.push([a_new], full=False, deleted=[codes[1]]),
                {codes[0]: a_new},
                [codes[1]],
            ),
            ("removal by a full push", lambda: pusher.push(held), {}, [codes[0]]),
        ]
        for kind, send, upserts, removals in steps:
            expected.update(upserts)
            for code in removals:
                expected.pop(code, None)
            started = time.time()
            pusher.accepted(send(), f"the child's push ({kind})")
            latencies[kind] = None
            if not _matches(_catalog(ctx, "subtree"), expected, codes):
                # What the node does not hold it cannot push on: no wait for the parent.
                problem = f"the {kind} pushed by the child is not visible at once in scope=subtree"
                break
            deadline = started + bound_s
            while time.time() < deadline:
                view = _folded(parent) if parent is not None else _parent_view(ctx, parent_spec)
                if _matches(view, expected, codes):
                    latencies[kind] = time.time() - started
                    break
                time.sleep(_POLL_S if parent is not None else 0.5)
            if latencies[kind] is None:
                break
    return _Propagation(latencies, problem, bound_s)


def _propagation(ctx: CheckContext) -> _Propagation:
    """The measurement, made once per run with the longer bound of ATS-CAS-10."""
    bound = float(ctx.params["within_s"])
    found = ctx.run.recall("cascade.propagation")
    if isinstance(found, _Propagation) and found.bound_s >= bound:
        return found
    measured = _measure_propagation(ctx, bound)
    ctx.run.remember("cascade.propagation", measured)
    return measured


def _judge_propagation(ctx: CheckContext) -> None:
    within = float(ctx.params["within_s"])
    measured = _propagation(ctx)
    if measured.problem:
        ctx.fail(measured.problem)
    shown = ", ".join(
        f"{kind} re-pushed after {s:.1f} s" if s is not None else f"{kind} not re-pushed"
        for kind, s in measured.latencies.items()
    )
    late = [k for k, s in measured.latencies.items() if s is None or s > within]
    if late:
        ctx.fail(
            f"changes pushed by the child did not reach the parent within {within:g} s: {shown}"
        )
    ctx.note(shown)


@check("ATS-CAS-10")
@_witnessed
def child_change_propagated(ctx: CheckContext) -> None:
    """A change pushed by the child is visible at once in scope=subtree and reaches the parent —
    additions, updates and removals — within 60 s."""
    _judge_propagation(ctx)


@check("ATS-CAS-11")
def child_change_propagated_promptly(ctx: CheckContext) -> None:
    """A change pushed by the child reaches the parent within 5 s."""
    _judge_propagation(ctx)
