"""The load stage (ATS §12): locust user classes, the locust runner, statistics and SLO judgements.

The public names are re-exported here; ``locustfile.py`` is never imported by the harness (it is
the file the locust subprocesses load).
"""

from __future__ import annotations

from conformance.load.plan import (
    LoadPlan,
    LoadProfile,
    LoadProfileError,
    Phase,
    load_load_profile,
    make_phase,
)
from conformance.load.runner import (
    LoadRunError,
    RemoteWorkers,
    RunRecords,
    run_plan,
    serve_worker,
)
from conformance.load.slo import Judgement, Saturation, judge_latency, judge_saturation
from conformance.load.stage import (
    LoadStageResult,
    SteppedResult,
    load_refusal,
    run_stage,
    run_stepped,
)
from conformance.load.stats import PhaseStats, phase_stats

__all__ = [
    "Judgement",
    "LoadPlan",
    "LoadProfile",
    "LoadProfileError",
    "LoadRunError",
    "LoadStageResult",
    "Phase",
    "PhaseStats",
    "RemoteWorkers",
    "RunRecords",
    "Saturation",
    "SteppedResult",
    "judge_latency",
    "judge_saturation",
    "load_load_profile",
    "load_refusal",
    "make_phase",
    "phase_stats",
    "run_plan",
    "run_stage",
    "run_stepped",
    "serve_worker",
]
