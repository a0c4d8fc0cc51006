"""ATS chapter 12 — PERF: performance under the load stage's open-model load.

The four checks share one load stage per run, run lazily by the first of them and kept on
``ctx.run`` (``values["load.stage"]``, ``values["load.stepped"]``); its figures go to
``ctx.run.load`` for report.json's ``load`` member, and each clause's evidence holds the
figures that decided it. ``--load off`` skips them; ``smoke`` and ``full`` take their timings
from the clause parameters of the profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.ats import HEALTH
from conformance.checks import CheckContext, check
from conformance.load.plan import DEFAULT_LOAD_PROFILE, load_load_profile
from conformance.load.slo import (
    Judgement,
    judge_latency,
    judge_saturation,
    judge_server_errors,
)
from conformance.load.stage import (
    CATALOG_PAGE,
    SHARE_QUERY,
    LoadStageResult,
    SteppedResult,
    run_stage,
    run_stepped,
)
from conformance.load.stats import PhaseStats
from conformance.profile import get_clause

STAGE_KEY = "load.stage"
STEPPED_KEY = "load.stepped"
_OFF = "load stage off (--load off)"


def _params(ctx: CheckContext, clause_id: str) -> Mapping[str, Any]:
    if clause_id == ctx.clause.id:
        return ctx.params
    if ctx.profile is not None:
        for clause in ctx.profile.clauses:
            if clause.id == clause_id:
                return clause.params
    return get_clause(clause_id).params


def _mode(ctx: CheckContext) -> str:
    if ctx.load_mode == "off":
        ctx.skip(_OFF)
    return ctx.load_mode


def _stage(ctx: CheckContext) -> LoadStageResult:
    mode = _mode(ctx)

    def measure() -> LoadStageResult:
        params = {c: _params(ctx, c) for c in ("ATS-PERF-01", "ATS-PERF-02")}
        result = run_stage(
            ctx.target,
            mode,
            params,
            load_load_profile(),
            workers=ctx.load_workers,
            remote=ctx.load_remote,
        )
        ctx.run.load.update(result.to_dict())
        return result

    stage: LoadStageResult = ctx.run.cached(STAGE_KEY, measure)
    if stage.error is not None:
        ctx.error(f"the load stage could not run: {stage.error}")
    for problem in stage.problems:
        ctx.note(f"load stage: {problem}")
    return stage


def _evidence(ctx: CheckContext, stats: PhaseStats) -> None:
    # The figures that decided the clause, structured for the report writers.
    ctx.evidence.entries.append({"load": stats.to_dict()})
    ctx.note(stats.summary())


def _decide(ctx: CheckContext, judgement: Judgement) -> None:
    if judgement.verdict == "FAIL":
        ctx.fail(judgement.reason)
    if judgement.verdict == "ERROR":
        ctx.error(judgement.reason)
    ctx.note(judgement.reason)


def _latency_clause(ctx: CheckContext, scenario: str) -> None:
    stage = _stage(ctx)
    stats = stage.phases.get(scenario)
    if stats is None:
        ctx.error(f"the load stage measured no {scenario} window")
    _evidence(ctx, stats)
    lag = load_load_profile().generator.max_generator_lag_ms
    if stage.problems:
        ctx.error(f"the load stage is incomplete: {'; '.join(stage.problems)}")
    _decide(ctx, judge_latency(stats, ctx.params, max_generator_lag_ms=lag))


@check("ATS-PERF-01")
def share_query_latency_within_slo(ctx: CheckContext) -> None:
    """Share queries at the level's target rate have p95 ≤ 500 ms, p99 ≤ 1500 ms, ≤ 0.1 % fails."""
    _latency_clause(ctx, SHARE_QUERY)


@check("ATS-PERF-02")
def catalog_page_latency_within_slo(ctx: CheckContext) -> None:
    """Catalog pages of 100 entries at 20 req/s have p95 ≤ 800 ms and ≤ 0.1 % failures."""
    _latency_clause(ctx, CATALOG_PAGE)


@check("ATS-PERF-03")
def no_server_errors_under_load(ctx: CheckContext) -> None:
    """The measured windows hold no 5xx answer, and the node answers health after the load."""
    stage = _stage(ctx)
    windows = [stage.phases[name] for name in (SHARE_QUERY, CATALOG_PAGE) if name in stage.phases]
    if len(windows) < 2:
        ctx.error("the load stage measured fewer than its two windows")
    for stats in windows:
        ctx.evidence.entries.append({"load": stats.to_dict()})
    judgement = judge_server_errors(windows, int(ctx.params.get("max_server_errors", 0)))
    if judgement.verdict == "FAIL":
        ctx.fail(judgement.reason)
    health = ctx.client.request("GET", HEALTH, app=None, allow_transport_error=True)
    if health.status != 200:
        seen = health.error if health.status is None else health.summary()
        ctx.fail(f"after the load, health was answered {seen}; expected 200 UP")
    ctx.note(judgement.reason)


@check("ATS-PERF-04")
def saturation_point_above_target(ctx: CheckContext) -> None:
    """A stepped load finds the saturation point at no less than twice the level's target rate."""
    mode = _mode(ctx)
    profile = load_load_profile(str(ctx.params.get("load_profile", DEFAULT_LOAD_PROFILE)))
    timeout = float(_params(ctx, "ATS-PERF-01").get("client_timeout_s", 5))

    def measure() -> SteppedResult:
        result = run_stepped(
            ctx.target,
            mode,
            ctx.params,
            profile,
            client_timeout_s=timeout,
            workers=ctx.load_workers,
            remote=ctx.load_remote,
        )
        ctx.run.load["stepped"] = result.to_dict()
        return result

    stepped: SteppedResult = ctx.run.cached(STEPPED_KEY, measure)
    if stepped.error is not None or stepped.found is None:
        ctx.error(f"the stepped load could not run: {stepped.error}")
    for step in stepped.found.steps:
        _evidence(ctx, step)
    if stepped.problems:
        ctx.error(f"the stepped load is incomplete: {'; '.join(stepped.problems)}")
    _decide(
        ctx,
        judge_saturation(
            stepped.found, ctx.params, max_generator_lag_ms=profile.generator.max_generator_lag_ms
        ),
    )
