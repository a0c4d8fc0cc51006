"""A reference node on loopback for the load tests, its target file, and PERF check contexts.

The node runs as its own process (``python -m conformance.reference``), as a vendor's node
would, started from the plan of ``support.nodes``; its parent and child point at closed loopback
ports. Every wait is bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from support.nodes import CHILD_ID, PARENT_ID, PlannedNode, plan_node, running

from conformance.checks import CheckContext, RunState, registry
from conformance.client import EvidenceLog, NodeClient
from conformance.data import data_dir
from conformance.outcomes import decide
from conformance.profile import Profile, load_profile
from conformance.target import Target, load_target

NODE_ID = "330000"
ROLES: Mapping[str, str] = json.loads(
    (data_dir("fixtures") / "catalogs" / f"{NODE_ID}.json").read_text("utf-8")
)["roles"]
# Short smoke windows keep the suite's own CI cost small; the clause thresholds are unchanged.
SHORT = {"smoke_warmup_s": 1, "smoke_window_s": 4}


def write_files(folder: Path, faults: Sequence[str] = ()) -> tuple[Path, Path]:
    """A provincial node file and the target file that certifies it; answers both paths. The
    node's parent and child are wired to closed loopback ports; the target file names neither."""
    planned = _planned(folder, faults)
    return planned.node_file, planned.target_file


def _planned(folder: Path, faults: Sequence[str], variants: Sequence[str] = ()) -> PlannedNode:
    planned = plan_node(folder, database=str(folder / "node.sqlite3"), omit=(PARENT_ID, CHILD_ID))
    planned.node["faults"] = list(faults)
    planned.node["variants"] = list(variants)
    planned.write()
    return planned


@contextmanager
def running_node(
    folder: Path, faults: Sequence[str] = (), variants: Sequence[str] = ()
) -> Iterator[Target]:
    """A reference node with these faults and variants, and the target file pointing at it, for
    the block."""
    planned = _planned(folder, faults, variants)
    with running(planned):
        yield load_target(planned.target_file)


def short_profile(changes: Mapping[str, Any] = SHORT) -> Profile:
    """The provincial profile with ``changes`` applied to the parameters of ATS-PERF-01/-02."""
    profile = load_profile("provincial")
    clauses = tuple(
        replace(c, params={**c.params, **changes}) if c.id in ("ATS-PERF-01", "ATS-PERF-02") else c
        for c in profile.clauses
    )
    return replace(profile, clauses=clauses)


def context(
    target: Target, clause_id: str, run: RunState, profile: Profile, mode: str = "smoke"
) -> CheckContext:
    """The context of one PERF check of ``profile``, as the plugin builds it."""
    clause = next(c for c in profile.clauses if c.id == clause_id)
    evidence = EvidenceLog(target.secrets())
    return CheckContext(
        clause=clause,
        target=target,
        client=NodeClient(target).for_clause(evidence),
        run=run,
        evidence=evidence,
        profile=profile,
        load_mode=mode,
    )


def assess(ctx: CheckContext) -> tuple[str, str]:
    """The verdict and reason of the clause's check in this context."""
    function = registry()[ctx.clause.id].function
    decision = decide(lambda: function(ctx))
    return decision.verdict.value, decision.reason
