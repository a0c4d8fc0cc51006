"""The suite in the roles of the candidate's neighbours (ATS §8): pushing as its child,
querying as its parent, and the resource codes each role holds or lacks.

A push as the child goes to the candidate with the child's credential at the candidate
(``as_child``); what the checks change in the child's entries is restored afterwards, so that
later checks see the catalog as it was.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from conformance import ats, schemas
from conformance.checks import CheckContext, Inconclusive
from conformance.checks._expect import answer_text, expect_status
from conformance.checks.cascade.view import View, catalog, held_from
from conformance.client import Exchange
from conformance.target import NeighbourSpec

# A classification code for codes no node of the run holds (ATS §4: 类 1, 项 01, 目 001).
_UNKNOWN_CLASS = "101001"


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


def generated(
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
class AsChild:
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
        return self.ctx.client.post(ats.CASCADE_PUSH, app=app, json=body)

    def accepted(self, ex: Exchange, what: str) -> None:
        """The push was answered 200 ``{"accepted": n}``."""
        expect_status(ex, 200, what=what)
        if schemas.validation_errors("cascade-push-answer", ex.json()):
            self.ctx.fail(f'{what} was answered {ex.body[:200]!r}; expected {{"accepted": n}}')


def _as_child(ctx: CheckContext, spec: NeighbourSpec) -> AsChild:
    # A full push is accepted with any seq (ATS §8): a high, run-specific start keeps the
    # incremental pushes of these checks apart from those of a real child.
    start = ctx.run.cached("cascade.child_seq", lambda: 1000 + int(time.time()) % 100_000)
    return AsChild(ctx, spec, int(start))


@contextmanager
def child_state(ctx: CheckContext, spec: NeighbourSpec) -> Iterator[tuple[AsChild, dict]]:
    """The pusher and the entries held from the child before; afterwards, the child's entries
    are what they were (one full push of them), so that later checks see the catalog as it was."""
    local = catalog(ctx, "local")
    subtree = catalog(ctx, "subtree")
    held = held_from(subtree, local, spec.node_id)
    pusher = _as_child(ctx, spec)
    try:
        yield pusher, {"local": local, "subtree": subtree, "held": held}
    finally:
        restore = pusher.push(list(held.values()))
        ctx.run.remember("cascade.child_seq", pusher.seq + 1)
        if restore.status != 200:
            ctx.note(f"restoring the child's entries was answered {answer_text(restore)}")


@contextmanager
def child_code(ctx: CheckContext, spec: NeighbourSpec) -> Iterator[str]:
    """A code of the candidate's subtree catalog held from the child ``spec``; when it holds
    none, one pushed as the child for the block and removed after it."""
    local = catalog(ctx, "local")
    subtree = catalog(ctx, "subtree")
    held = held_from(subtree, local, spec.node_id)
    if held:
        yield sorted(held)[0]
        return
    with child_state(ctx, spec) as (pusher, _):
        entry = generated(ctx, local, subtree, spec.node_id, 1)[0]
        pusher.accepted(pusher.push([entry]), "a full push of the child")
        yield str(entry["resource_code"])


def outside_code(subtree: Mapping[str, Any]) -> str:
    """A well-formed code outside the candidate's subtree catalog (ATS-CAS-05)."""
    for n in range(999_999, 999_000, -1):
        code = f"{_UNKNOWN_CLASS}/{n:06d}"
        if code not in subtree:
            return code
    raise Inconclusive("no free resource code outside the node's subtree catalog")


@contextmanager
def role_code(ctx: CheckContext, hood: View, role: str) -> Iterator[str]:
    """A code the node should forward to its ``role`` neighbour: one outside its subtree for
    the parent, one held from the child for the child."""
    if role == "parent":
        yield outside_code(catalog(ctx, "subtree"))
        return
    with child_code(ctx, hood.spec("child", "holding the codes routed down")) as code:
        yield code


def from_parent_headers(spec: NeighbourSpec) -> dict[str, str]:
    """The routing headers of a query the parent forwards to the candidate (ATS §8)."""
    return {
        ats.X_ORIGIN_NODE: spec.node_id,
        ats.X_ORIGIN_APP: "cascade-check",
        ats.X_ROUTE: spec.node_id,
        ats.X_HOP_LIMIT: "6",
    }
