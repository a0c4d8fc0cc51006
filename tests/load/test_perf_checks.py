"""The PERF checks against real reference nodes on loopback: the clean node passes (each fault
fails exactly its clauses in tests/test_fault_matrix.py, bench "perf").

Each test starts its own node process and runs real locust subprocesses against it, with short
smoke windows (1 s warm-up, 4 s window) so that the suite's own CI stays cheap.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from loadnode import ROLES, SHORT, assess, context, running_node, short_profile

from conformance.checks import RunState
from conformance.load import load_load_profile, make_phase, run_plan
from conformance.load.plan import LoadPlan, split_base_url
from conformance.load.stage import run_stage

PERF = ("ATS-PERF-01", "ATS-PERF-02", "ATS-PERF-03", "ATS-PERF-04")


@pytest.mark.timeout(180)
def test_the_clean_node_passes_every_perf_clause(tmp_path: Path) -> None:
    profile = short_profile()
    run = RunState()
    with running_node(tmp_path) as target:
        outcomes = {}
        evidence = {}
        for clause_id in PERF:
            ctx = context(target, clause_id, run, profile)
            outcomes[clause_id] = assess(ctx)
            evidence[clause_id] = ctx.evidence.entries
    assert {c: v for c, (v, _) in outcomes.items()} == dict.fromkeys(PERF, "PASS"), outcomes
    # The report's load member: both scenarios, the stepped load and its saturation point.
    assert set(run.load["scenarios"]) == {"share-query", "catalog-page"}
    share = run.load["scenarios"]["share-query"]
    assert share["clause"] == "ATS-PERF-01"
    assert abs(share["rate_per_s"] - 50) <= 2.5
    assert share["p95_ms"] is not None
    assert share["failures"] == 0
    assert len(share["timeline"]) == SHORT["smoke_window_s"]
    assert run.load["stepped"]["saturation_rate_per_s"] >= 100
    assert any("load" in entry for entry in evidence["ATS-PERF-01"])
    # No secret reaches the report's load member or any evidence.
    written = json.dumps([run.load, evidence], ensure_ascii=False)
    assert not any(secret in written for secret in target.secrets())


@pytest.mark.timeout(90)
def test_two_distributed_workers_share_the_rate(tmp_path: Path) -> None:
    profile = load_load_profile()
    with running_node(tmp_path) as target:
        origin, prefix = split_base_url(target.node.base_url)
        phase = make_phase(
            "share-query",
            profile.scenarios["share-query"],
            prefix=prefix,
            resources=ROLES,
            rate_per_s=40,
            warmup_s=1,
            window_s=3,
            workers=2,
            generator=profile.generator,
            caps=profile.caps,
        )
        plan = LoadPlan(origin, "load", "HMAC-SM3", 5.0, 2, (phase,))
        records = run_plan(plan, target.apps["load"].secret, local_workers=2)
    assert records.workers_reported == 2
    assert records.problems == ()
    measured = records.phases["share-query"]
    assert measured.scheduled == 120
    assert len(measured.records) == 120
    assert {r[4] for r in measured.records} == {200}
    # Every request was signed with a fresh nonce: none was refused as a replay (ATS-AUTH-05).
    offsets = sorted(r[0] for r in measured.records)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    # Worker 1 is offset by 1/40 s from worker 0: the two interleave at the combined rate.
    assert max(gaps) < 0.05


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_stage_with_two_workers_reports_both_windows(tmp_path: Path) -> None:
    profile = short_profile()
    params = {c.id: c.params for c in profile.clauses if c.id in ("ATS-PERF-01", "ATS-PERF-02")}
    with running_node(tmp_path) as target:
        stage = run_stage(target, "smoke", params, load_load_profile(), workers=2)
    assert stage.error is None, stage.error
    assert stage.problems == ()
    assert stage.workers == 2
    assert stage.phases["catalog-page"].failures == 0
    assert abs(stage.phases["catalog-page"].rate_per_s - 20) <= 1
