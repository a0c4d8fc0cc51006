"""The reference node 330000 between the suite's emulated parent 100000 and child 330100, or
certified inside the real topology of ``conformance serve``, and a runner of the CAS checks.

A check runs exactly as the plugin runs it: a ``CheckContext`` with its own evidence log, the
verdict taken from the outcome it raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from support.nodes import PlannedNode, plan_node, running

from conformance.checks import (
    CheckContext,
    CheckFunction,
    RunState,
    registry,
)
from conformance.client import EvidenceLog, NodeClient
from conformance.data import data_dir
from conformance.neighbours import NeighbourSet, start_neighbours
from conformance.outcomes import decide
from conformance.profile import load_profile
from conformance.reference.launcher import start_topology
from conformance.target import load_target
from conformance.topology import write_file

NODE_ID = "330000"
CHILD_ID = "330100"
RATE_LIMIT = 2000
# ATS-CAS-08 bounds the cascade timeout at 10 s; 2 s keeps the hang case short.
CASCADE_TIMEOUT_S = 2
CAS = tuple(f"ATS-CAS-{n:02d}" for n in range(1, 12))
# ATS-CAS-10's 60 s, shortened for the self-tests but kept above the 8 s delay of the
# slow-sync fault, which must break ATS-CAS-11 (5 s) and not ATS-CAS-10.
PARAM_OVERRIDES = {"ATS-CAS-10": {"within_s": 12}}


def _planned(folder: Path) -> PlannedNode:
    """Node 330000 between the emulated parent and child, on paper."""
    planned = plan_node(folder, rate_limit=RATE_LIMIT, cascade_timeout_s=CASCADE_TIMEOUT_S)
    planned.target["timeouts"] = {"connect_s": 3, "read_s": 10}
    planned.write()
    return planned


@dataclass
class Candidate:
    """A running candidate node, its client, its emulated neighbours (in live mode only the
    emulated child slot)."""

    client: NodeClient
    neighbours: NeighbourSet | None
    run: RunState = field(default_factory=RunState)
    # The skip cause of each clause that was SKIP, as report.json names it.
    skip_causes: dict[str, str] = field(default_factory=dict)

    def check(self, clause_id: str) -> tuple[str, str, CheckContext]:
        """Run the check of ``clause_id``: verdict (PASS/FAIL/ERROR/SKIP), reason, context."""
        return self.run_as(clause_id, registry()[clause_id].function)

    def run_as(self, clause_id: str, function: CheckFunction) -> tuple[str, str, CheckContext]:
        """Run ``function`` as the check of ``clause_id``: verdict, reason, context."""
        clause = load_profile("provincial").clause(clause_id)
        if clause_id in PARAM_OVERRIDES:
            clause = replace(clause, params={**clause.params, **PARAM_OVERRIDES[clause_id]})
        target = self.client.target
        evidence = EvidenceLog(target.secrets())
        ctx = CheckContext(
            clause=clause,
            target=target,
            client=self.client.for_clause(evidence),
            run=self.run,
            evidence=evidence,
            neighbours=self.neighbours,
        )
        decision = decide(lambda: function(ctx))
        if decision.skip_cause is not None:
            self.skip_causes[clause_id] = decision.skip_cause.value
        return decision.verdict.value, decision.reason, ctx

    def verdicts(self, clause_ids: Sequence[str] = CAS) -> dict[str, tuple[str, str]]:
        """The verdict and reason of each clause, in turn."""
        return {cid: self.check(cid)[:2] for cid in clause_ids}


def push_child_catalog(client: NodeClient) -> None:
    """The child's first full push (ATS §8), as the real child 330100 would send it."""
    child = json.loads((data_dir("fixtures") / "catalogs" / f"{CHILD_ID}.json").read_text("utf-8"))
    push = {
        "source_node_id": CHILD_ID,
        "seq": 1,
        "full": True,
        "entries": child["entries"],
        "deleted": [],
    }
    ex = client.post("/api/v1/cascade/catalog", app="as_child", json=push)
    assert ex.status == 200, ex.summary()


@contextmanager
def _running(
    planned: PlannedNode, faults: Sequence[str], variants: Sequence[str] = ()
) -> Iterator[NodeClient]:
    """The planned node started with these faults and variants, the target file pointed at it,
    a client of it, and the child's first push made."""
    with ExitStack() as stack:
        stack.enter_context(running(planned, faults, variants))
        client = NodeClient(load_target(planned.target_file))
        stack.callback(client.close)
        push_child_catalog(client)
        yield client


@contextmanager
def emulated_candidate(
    folder: Path, faults: Sequence[str] = (), variants: Sequence[str] = ()
) -> Iterator[Candidate]:
    """The reference node with these faults and variants, its emulated neighbours listening."""
    planned = _planned(folder)
    with ExitStack() as stack:
        target = load_target(planned.target_file)
        assert target.neighbours is not None
        neighbours = start_neighbours(target.neighbours)
        stack.callback(neighbours.stop)
        client = stack.enter_context(_running(planned, faults, variants))
        yield Candidate(client, neighbours)


@contextmanager
def candidate_target(folder: Path, faults: Sequence[str] = ()) -> Iterator[Path]:
    """The reference node with these faults, running, and the target file that certifies it;
    the emulated neighbours are left to the run (``conformance run`` starts them)."""
    planned = _planned(folder)
    with _running(planned, faults):
        yield planned.target_file


@contextmanager
def live_candidate(
    folder: Path, faults: Sequence[str] = (), *, emulated_child: bool = True
) -> Iterator[Candidate]:
    """The provincial node of the reference topology, certified against its real neighbours
    and, unless ``emulated_child`` is false, the child slot the suite emulates beside them."""
    with ExitStack() as stack:
        topology = stack.enter_context(
            start_topology(
                folder, faults={NODE_ID: list(faults)}, cascade_timeout_s=CASCADE_TIMEOUT_S
            )
        )
        document = topology.target()
        if not emulated_child:
            del document["neighbours"]["emulated_child"]
        target = load_target(write_file(folder / "target.yaml", document))
        assert target.neighbours is not None
        neighbours = start_neighbours(target.neighbours)
        stack.callback(neighbours.stop)
        client = NodeClient(target)
        stack.callback(client.close)
        yield Candidate(client, neighbours)


def misjudged(
    verdicts: dict[str, tuple[str, str]], broken: Sequence[str], may_skip: Sequence[str] = ()
) -> list[str]:
    """What is wrong with ``verdicts``: a clause in ``broken`` that does not fail, or another
    that does not pass (or skip, when in ``may_skip``)."""
    problems = []
    for clause_id, (verdict, reason) in verdicts.items():
        if clause_id in broken:
            if verdict != "FAIL":
                problems.append(f"{clause_id} is {verdict}, expected FAIL: {reason}")
        elif verdict != "PASS" and not (verdict == "SKIP" and clause_id in may_skip):
            problems.append(f"{clause_id} is {verdict}: {reason}")
    return problems
