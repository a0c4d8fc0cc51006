"""A reference node with emulated neighbours, and a runner of data-chapter checks against it.

The node is a real process (``python -m conformance.reference``) on a loopback port, provincial
``330000``, its parent and child emulated by the suite (``conformance.neighbours``) on ports of
their own, so that routing ends in a 404 at the parent and a child can stop answering. A check
runs exactly as the plugin runs it: a ``CheckContext`` with its own evidence log, the verdict
taken from the outcome it raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from support.nodes import plan_node, running

from conformance.checks import (
    CheckContext,
    RunState,
    registry,
)
from conformance.client import EvidenceLog, NodeClient
from conformance.data import data_dir
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.outcomes import decide
from conformance.profile import load_profile
from conformance.target import load_target

NODE_ID = "330000"
# High enough that the suite's pacing (half the limit) does not slow the self-tests down.
RATE_LIMIT = 2000
DATA_CHAPTERS = ("CAT", "SHR", "SUB", "PRIV", "STAT")
# The reference node probes its children every 2 s: a short wait proves the drop (ATS-STAT-02).
PARAM_OVERRIDES = {"ATS-STAT-02": {"probe_max_age_s": 3, "probe_timeout_s": 2}}


@dataclass
class DataNode:
    """A running reference node, its target file, neighbours, one run state and one client."""

    target_path: Path
    neighbours: NeighbourSet
    client: NodeClient
    run: RunState = field(default_factory=RunState)
    skip_causes: dict[str, str] = field(default_factory=dict)

    def check(
        self, clause_id: str, *, thorough: bool = False, params: Mapping[str, Any] | None = None
    ) -> tuple[str, str, CheckContext]:
        """Run the check of ``clause_id``: verdict (PASS/FAIL/ERROR/SKIP), reason, context;
        ``thorough`` as with --thorough, ``params`` over the profile's parameters."""
        clause = load_profile("provincial").clause(clause_id)
        overrides = {**PARAM_OVERRIDES.get(clause_id, {}), **(params or {})}
        if overrides:
            clause = replace(clause, params={**clause.params, **overrides})
        target = self.client.target
        evidence = EvidenceLog(target.secrets())
        ctx = CheckContext(
            clause=clause,
            target=target,
            client=self.client.for_clause(evidence),
            run=self.run,
            evidence=evidence,
            neighbours=self.neighbours,
            thorough=thorough,
        )
        function = registry()[clause_id].function
        decision = decide(lambda: function(ctx))
        if decision.skip_cause is not None:
            self.skip_causes[clause_id] = decision.skip_cause.value
        return decision.verdict.value, decision.reason, ctx

    def verdicts(self, clause_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The verdict and reason of each clause, in turn."""
        return {cid: self.check(cid)[:2] for cid in clause_ids}


@contextmanager
def data_node(
    folder: Path,
    faults: Sequence[str] = (),
    catalog: str = NODE_ID,
    *,
    children: bool = True,
    emulate_child: bool = True,
    variants: Sequence[str] = (),
) -> Iterator[DataNode]:
    """A reference node with these faults and variants, its emulated neighbours listening: without
    ``children`` the node has none; without ``emulate_child`` the target file names no child
    although the node has one (which then never answers)."""
    planned = plan_node(
        folder,
        rate_limit=RATE_LIMIT,
        children=children,
        seed=catalog,
        omit=() if emulate_child else ("330100",),
    )
    planned.target["timeouts"] = {"connect_s": 3, "read_s": 10}
    planned.write()
    with ExitStack() as stack:
        target = load_target(planned.target_file)
        assert target.neighbours is not None
        neighbours = start_neighbours(target.neighbours)
        stack.callback(neighbours.stop)
        stack.enter_context(running(planned, faults, variants))
        client = NodeClient(load_target(planned.target_file))
        stack.callback(client.close)
        if target.neighbours.child is not None:
            _push_child_catalog(client)
        yield DataNode(planned.target_file, neighbours, client)


def _push_child_catalog(client: NodeClient) -> None:
    """The child's first full push (ATS §8), as the real child 330100 would send it."""
    child = json.loads((data_dir("fixtures") / "catalogs" / "330100.json").read_text("utf-8"))
    push = {
        "source_node_id": "330100",
        "seq": 1,
        "full": True,
        "entries": child["entries"],
        "deleted": [],
    }
    ex = client.post("/api/v1/cascade/catalog", app="as_child", json=push)
    if ex.status == 401:
        # A node under the no-sm3 fault takes only HMAC-SHA256 (ATS-AUTH-07).
        ex = client.post(
            "/api/v1/cascade/catalog", app="as_child", json=push, signature_method="HMAC-SHA256"
        )
    assert ex.status == 200, ex.summary()


def data_clauses() -> tuple[str, ...]:
    """The clause ids of the data chapters, in the standard's order."""
    profile = load_profile("provincial")
    return tuple(c.id for c in profile.clauses if c.chapter in DATA_CHAPTERS)


def _push_invalid_entry(client: NodeClient) -> None:
    """The child pushes an entry without ``update_cycle``: only a node that skips validation
    stores it (the defect of ``accept-invalid-entry``)."""
    child = json.loads((data_dir("fixtures") / "catalogs" / "330100.json").read_text("utf-8"))
    entry = {k: v for k, v in child["entries"][0].items() if k != "update_cycle"}
    push = {"source_node_id": "330100", "seq": 2, "full": False, "entries": [entry], "deleted": []}
    client.post("/api/v1/cascade/catalog", app="as_child", json=push)


# Faults whose defect shows only after something the tests provoke (a child's push).
PROVOCATIONS = {"accept-invalid-entry": _push_invalid_entry}
# Faults whose defect shows only on a node without children (ATS §10: connectivity_rate 1).
CHILDLESS = frozenset({"childless-connectivity-zero"})
