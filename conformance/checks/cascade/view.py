"""The neighbourhood as the cascade checks see it (ATS §8), in one view with two
implementations.

With emulated neighbours (``EmulatedView``) the suite sees every request the candidate sends up
or down and can make a neighbour hold a code, refuse, fail, hang or loop. With the live topology
(``LiveView``: the candidate's real parent and child) what a neighbour received is not
observable (``None``), the parent's catalog is read from the parent itself, and what only a
misbehaving neighbour could show is provoked with the target's ``emulated_child``, a further
child the candidate is wired to, or not assessed when the target file names none.

The view also holds what every cascade check shares: the catalog walk, the share query the
checks send, the route arithmetic, and ``witnessed``, which adds what the emulated neighbours
received to the clause's evidence.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any

from conformance import ats, compare
from conformance.checks import CheckContext, CheckFunction
from conformance.checks._catalog_walk import CatalogWalk
from conformance.checks._expect import answer_text, request_text
from conformance.client import EVIDENCE_BODY, Exchange, NodeClient
from conformance.neighbours import Behaviour, EmulatedNeighbour, RecordedRequest
from conformance.target import NeighbourSpec

# The body every routed query of these checks carries; the next hop must receive it unchanged.
QUERY_BODY = {"page": 1, "size": 5}
# How many requests received by the emulated neighbours one clause's evidence shows at most.
_RECEIVED_SHOWN = 40
ROLES = ("parent", "child")


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


def catalog(
    ctx: CheckContext, scope: str, client: NodeClient | None = None, app: str = "consumer"
) -> dict[str, dict[str, Any]]:
    """The catalog in ``scope`` by resource code, walked page by page (ATS §4)."""
    walk = CatalogWalk(ctx, scope=scope, client=client, app=app)
    return {str(e.get("resource_code")): e for e in walk}


def held_from(
    subtree: Mapping[str, dict[str, Any]], local: Mapping[str, Any], child: str
) -> dict[str, dict[str, Any]]:
    """The entries of the subtree catalog the candidate holds from ``child`` (ATS §8)."""
    return {
        code: entry
        for code, entry in subtree.items()
        if code not in local and in_subtree(str(entry.get("node_id")), child)
    }


def query(
    ctx: CheckContext,
    code: str,
    *,
    app: str = "consumer",
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Exchange:
    """A share query for ``code`` with a fresh ``X-Request-Id``; no answer is an exchange with
    ``error`` set."""
    sent = {ats.X_REQUEST_ID: f"cas-{uuid.uuid4().hex[:24]}", **(headers or {})}
    return ctx.client.post(
        ats.share_query_path(code),
        app=app,
        json=QUERY_BODY,
        headers=sent,
        timeout=(3.0, timeout) if timeout else None,
        allow_transport_error=True,
    )


def sent_request_id(ex: Exchange) -> str | None:
    """The ``X-Request-Id`` the suite sent with ``ex``."""
    lower = ats.X_REQUEST_ID.lower()
    return next((v for k, v in ex.request_headers.items() if k.lower() == lower), None)


def expect_routed_answer(ctx: CheckContext, ex: Exchange, route: list[str], *, what: str) -> None:
    """The answer came from the end of ``route``: its ``X-Route`` starts with it."""
    got = compare.route_ids(ex.headers.get(ats.X_ROUTE))
    if got[: len(route)] != list(route):
        ctx.fail(
            f"{what} was answered {answer_text(ex)} with X-Route "
            f"{ex.headers.get(ats.X_ROUTE)!r}; expected a route starting {','.join(route)!r} "
            f"({request_text(ex)})"
        )


class View:
    """The candidate's neighbourhood: its neighbours as the target file names them, what they
    received, the parent's catalog, and the neighbours the suite can make misbehave."""

    live = False
    # What a neighbour received is observable (the emulated neighbours record it).
    observes = True
    # How often a poll for a change at the parent looks again (ATS-CAS-10).
    poll_s = 0.1

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx

    def spec(self, role: str, purpose: str) -> NeighbourSpec:
        """The target's ``role`` neighbour; not assessed when the target names none.

        A clause that does not apply to the node's level never runs (the profiles mark it), so
        a missing neighbour here is a gap of the target file, not a reason to pass the clause.
        """
        ctx = self.ctx
        neighbours = ctx.target.neighbours
        spec = getattr(neighbours, role) if neighbours is not None else None
        if spec is None:
            kind = "its real" if self.live else "an emulated"
            ctx.not_assessed(
                f"the target file names no neighbours.{role}: {ctx.clause.id} needs {kind} "
                f"{role} {purpose}"
            )
        return spec

    def has(self, role: str) -> bool:
        """The target file names a ``role`` neighbour."""
        neighbours = self.ctx.target.neighbours
        return neighbours is not None and getattr(neighbours, role) is not None

    def forwarding_roles(self) -> list[str]:
        """The roles of the neighbours the node may forward to; not assessed when none."""
        roles = [r for r in ROLES if self.has(r)]
        if not roles:
            self.ctx.not_assessed(
                f"the target file names neither neighbours.parent nor neighbours.child: "
                f"{self.ctx.clause.id} needs a neighbour the candidate forwards queries to"
            )
        return roles

    def received(self, role: str, code: str, since: float) -> list[RecordedRequest] | None:
        """The share queries for ``code`` the ``role`` neighbour received since ``since``; None
        when what it received is not observable."""
        raise NotImplementedError

    def pushes(self, since: float = 0.0) -> list[RecordedRequest] | None:
        """The catalog pushes the parent received since ``since``; None when not observable."""
        raise NotImplementedError

    def parent_catalog(self, spec: NeighbourSpec) -> dict[str, dict[str, Any]] | None:
        """What the parent holds of the candidate's subtree (ATS §8); None while it holds
        nothing from the candidate."""
        raise NotImplementedError

    def holding(self, role: str, code: str) -> AbstractContextManager[object]:
        """For the block, the ``role`` neighbour answers queries for ``code`` normally."""
        raise NotImplementedError

    def emulated(self, role: str) -> EmulatedNeighbour | None:
        """The running emulated ``role`` neighbour, which the suite can make misbehave and
        whose received requests it sees; None when the neighbour is real."""
        raise NotImplementedError

    def provoking(self, why: str) -> tuple[CheckContext, EmulatedView]:
        """The context and view in which the checks can make a neighbour misbehave and see
        what it received (``why`` says what for)."""
        raise NotImplementedError


class EmulatedView(View):
    """The neighbours are the suite's emulated parent and child."""

    def emulated(self, role: str) -> EmulatedNeighbour:
        found = getattr(self.ctx.neighbours, role) if self.ctx.neighbours is not None else None
        if found is None or not found.serving:
            self.ctx.error(f"the emulated {role} neighbour is not running")
        return found

    def received(self, role: str, code: str, since: float) -> list[RecordedRequest]:
        wanted = {ats.share_query_path(code), ats.share_query_path(code.replace("/", "%2F"))}
        recorded = self.emulated(role).recorded(ats.SHARE_PREFIX, since)
        return [r for r in recorded if r.path in wanted]

    def pushes(self, since: float = 0.0) -> list[RecordedRequest]:
        parent = self.emulated("parent")
        return [r for r in parent.recorded(ats.CASCADE_PUSH, since) if r.method == "POST"]

    def parent_catalog(self, spec: NeighbourSpec) -> dict[str, dict[str, Any]] | None:
        """The emulated parent's accepted pushes applied in the order received (ATS §8: a full
        push replaces, an incremental one upserts and deletes)."""
        state: dict[str, dict[str, Any]] | None = None
        for record in self.pushes():
            push = record.json()
            if not record.verified or record.status != 200 or not isinstance(push, dict):
                continue
            entries = {
                str(e.get("resource_code")): e
                for e in push.get("entries", [])
                if isinstance(e, dict)
            }
            if push.get("full") is True:
                state = entries
            elif state is not None:
                state.update(entries)
                for code in push.get("deleted", []):
                    state.pop(str(code), None)
        return state

    def holding(self, role: str, code: str) -> AbstractContextManager[object]:
        return self.emulated(role).behaving(Behaviour(holds=frozenset({code})))

    def provoking(self, why: str) -> tuple[CheckContext, EmulatedView]:
        return self.ctx, self


class LiveView(View):
    """The neighbours are the candidate's real parent and child (``neighbours.live``)."""

    live = True
    observes = False
    poll_s = 0.5

    def emulated(self, role: str) -> None:
        return None

    def received(self, role: str, code: str, since: float) -> None:
        return None

    def pushes(self, since: float = 0.0) -> None:
        return None

    def parent_catalog(self, spec: NeighbourSpec) -> dict[str, dict[str, Any]]:
        """The real parent's subtree catalog entries of the candidate's subtree, read with the
        candidate's credential at the parent."""
        ctx = self.ctx
        own = ctx.target.node.node_id
        client = peer_client(ctx, spec)
        try:
            seen = catalog(ctx, "subtree", client=client, app="candidate")
        finally:
            client.close()
        return {c: e for c, e in seen.items() if in_subtree(str(e.get("node_id")), own)}

    def holding(self, role: str, code: str) -> AbstractContextManager[object]:
        return nullcontext()

    def provoking(self, why: str) -> tuple[CheckContext, EmulatedView]:
        """The check's context with the target's ``emulated_child`` as the candidate's only
        neighbour; not assessed when the target file names none."""
        ctx = self.ctx
        neighbours = ctx.target.neighbours
        if neighbours is None or neighbours.emulated_child is None:
            ctx.not_assessed(
                f"live mode: {why}, and the target file names no neighbours.emulated_child (a "
                f"child the candidate is wired to, emulated by the suite)"
            )
        spare = neighbours.emulated_child
        target = replace(ctx.target, neighbours=neighbours.emulated())
        ctx.note(f"live mode: judged with the emulated child {spare.node_id} at {spare.listen}")
        spared = replace(ctx, target=target, client=ctx.client.for_target(target))
        return spared, EmulatedView(spared)


def view(ctx: CheckContext) -> View:
    """The neighbourhood of the candidate in this run."""
    neighbours = ctx.target.neighbours
    return LiveView(ctx) if neighbours is not None and neighbours.live else EmulatedView(ctx)


def peer_client(ctx: CheckContext, spec: NeighbourSpec) -> NodeClient:
    """A client of the real neighbour ``spec`` signing with the candidate's credential there."""
    # A real neighbour over HTTPS is verified with the target's CA bundle (one private CA).
    node = replace(ctx.target.node, base_url=spec.url, http_url=None)
    target = replace(ctx.target, node=node, apps={"candidate": spec.candidate})
    return NodeClient(target, ctx.evidence)


def _received_entry(
    ctx: CheckContext, neighbour: EmulatedNeighbour, rec: RecordedRequest
) -> dict[str, Any]:
    """The evidence entry of a request an emulated neighbour received, masked like the
    client's exchanges (``conformance.masking``: the run's secrets, ``X-Signature``)."""
    masker = ctx.evidence.masker
    by = f"the emulated {neighbour.spec.role} {neighbour.spec.node_id}"
    checked = "signature verified" if rec.verified else "signature not verified"
    if rec.stale:
        checked += f", refused: {rec.stale}"
    answered = f"answered {rec.status}" if rec.status else "not answered"
    return {
        "received_by": by,
        "method": rec.method,
        "target": masker.text(rec.target),
        "request_headers": masker.headers(rec.headers),
        "request_body": masker.body(rec.body, EVIDENCE_BODY),
        "request_body_size": len(rec.body),
        "verified": rec.verified,
        "stale": rec.stale,
        "status": rec.status or None,
        "summary": masker.text(
            f"received by {by}: {rec.method} {rec.target} ({checked}, {answered})"
        ),
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


def witnessed(function: CheckFunction) -> CheckFunction:
    """The check, its evidence holding every request the emulated neighbours received while it
    ran, whatever its outcome: what the candidate pushed or forwarded is what its verdict rests
    on (ATS §8)."""

    @functools.wraps(function)
    def witnessing(ctx: CheckContext) -> None:
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

    return witnessing
