"""The load stage of a run (ATS §12): measured once, judged by the four PERF clauses.

``run_stage`` sends ATS-PERF-01's share queries, then ATS-PERF-02's catalog pages, in one locust
run (one phase after the other); ``run_stepped`` sends ATS-PERF-04's steps of increasing rate.
Both go only to the target's own base URL, with the target file's ``load`` app, and only to a
loopback address unless the target file states ``load: {operator_owns_target: true}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from conformance.load.plan import (
    LoadPlan,
    LoadProfile,
    LoadProfileError,
    is_loopback_host,
    make_phase,
    split_base_url,
)
from conformance.load.runner import (
    REMOTE_WORKER_WAIT_S,
    LoadRunError,
    RemoteWorkers,
    RunRecords,
    run_plan,
)
from conformance.load.slo import Saturation, saturation, step_held
from conformance.load.stats import PhaseStats, phase_stats
from conformance.target import Target

LOAD_MODES = ("off", "smoke", "full")
SHARE_QUERY = "share-query"
CATALOG_PAGE = "catalog-page"
_SCENARIO_CLAUSES = {SHARE_QUERY: "ATS-PERF-01", CATALOG_PAGE: "ATS-PERF-02"}


def load_refusal(target: Target) -> str | None:
    """Why no load may be sent to the target, or None when it may.

    Load goes to a loopback address, or to a node whose operator says, in the target file, that
    they own it (``load: {operator_owns_target: true}``).
    """
    host = urlsplit(target.node.base_url).hostname or ""
    if is_loopback_host(host) or target.operator_owns_target:
        return None
    return (
        f"{target.node.base_url} is not a loopback address: load is sent only to a node whose "
        f"operator owns it; state `load: {{operator_owns_target: true}}` in {target.source}"
    )


def _timings(params: Mapping[str, Any], mode: str) -> tuple[float, float]:
    if mode == "smoke":
        return float(params["smoke_warmup_s"]), float(params["smoke_window_s"])
    return float(params["warmup_s"]), float(params["window_s"])


@dataclass(frozen=True)
class LoadStageResult:
    """The load stage's measurements: one ``PhaseStats`` per scenario, or why there are none."""

    mode: str
    workers: int
    phases: Mapping[str, PhaseStats] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stage as report.json's ``load`` member holds it (see docs/load.md)."""
        return {
            "mode": self.mode,
            "workers": self.workers,
            "scenarios": {
                name: {"clause": _SCENARIO_CLAUSES.get(name), **stats.to_dict()}
                for name, stats in self.phases.items()
            },
            "problems": list(self.problems),
            "error": self.error,
        }


@dataclass(frozen=True)
class SteppedResult:
    """The stepped load of ATS-PERF-04: every step sent, and the saturation point found."""

    mode: str
    found: Saturation | None
    problems: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stepped load as report.json's ``load.stepped`` member holds it."""
        found = self.found
        return {
            "mode": self.mode,
            "saturation_rate_per_s": found.rate_per_s if found else None,
            "capped": found.capped if found else None,
            "steps": [s.to_dict() for s in found.steps] if found else [],
            "problems": list(self.problems),
            "error": self.error,
        }


def _load_secret(target: Target) -> tuple[str, str]:
    if "load" not in target.apps:
        raise LoadRunError(
            f"{target.source}: apps.load is missing: the load stage needs a consumer app whose "
            "rate limit covers the load (ATS §12)"
        )
    credential = target.apps["load"]
    return credential.app_id, credential.secret


def _plan(
    target: Target,
    app_id: str,
    phases: tuple[Any, ...],
    client_timeout_s: float,
    workers: int,
    profile: LoadProfile,
) -> LoadPlan:
    origin, _ = split_base_url(target.node.base_url)
    plan = LoadPlan(
        host=origin,
        app_id=app_id,
        signature_method="HMAC-SM3",
        client_timeout_s=client_timeout_s,
        workers=workers,
        phases=phases,
        ca_bundle=target.node.ca_bundle,
        operator_owns_target=target.operator_owns_target,
    )
    plan.check_caps(profile.caps)
    return plan


def _run(
    plan: LoadPlan, secret: str, profile: LoadProfile, remote: RemoteWorkers | None
) -> RunRecords:
    if remote is None:
        return run_plan(plan, secret, margin_s=profile.generator.margin_s)
    return run_plan(
        plan,
        secret,
        local_workers=plan.workers - remote.count,
        bind_host=remote.bind_host,
        bind_port=remote.bind_port,
        margin_s=profile.generator.margin_s,
        worker_wait_s=REMOTE_WORKER_WAIT_S,
    )


def _workers(profile: LoadProfile, workers: int | None, remote: RemoteWorkers | None) -> int:
    # Local and remote workers share the rate: the plan expects them all.
    return (workers or profile.generator.workers) + (remote.count if remote else 0)


def run_stage(
    target: Target,
    mode: str,
    params: Mapping[str, Mapping[str, Any]],
    profile: LoadProfile,
    *,
    workers: int | None = None,
    remote: RemoteWorkers | None = None,
) -> LoadStageResult:
    """ATS-PERF-01 then ATS-PERF-02, one after the other; ``params`` by clause id.

    ``workers`` local worker processes, plus ``remote`` workers on other hosts when given.
    Never raises for a problem of the run: the result's ``error`` says what went wrong.
    """
    count = _workers(profile, workers, remote)
    refusal = load_refusal(target)
    if refusal is not None:
        return LoadStageResult(mode, count, error=refusal)
    share, catalog = params["ATS-PERF-01"], params["ATS-PERF-02"]
    _, prefix = split_base_url(target.node.base_url)
    phases = []
    for name, clause in ((SHARE_QUERY, share), (CATALOG_PAGE, catalog)):
        warmup, window = _timings(clause, mode)
        phases.append(
            make_phase(
                name,
                profile.scenarios[name],
                prefix=prefix,
                resources=target.resources,
                rate_per_s=float(clause["rate_per_s"]),
                warmup_s=warmup,
                window_s=window,
                workers=count,
                generator=profile.generator,
                caps=profile.caps,
                page_size=int(clause.get("page_size", 100)),
            )
        )
    try:
        app_id, secret = _load_secret(target)
        plan = _plan(
            target, app_id, tuple(phases), float(share["client_timeout_s"]), count, profile
        )
        records = _run(plan, secret, profile, remote)
    except (LoadRunError, LoadProfileError) as exc:
        return LoadStageResult(mode, count, error=str(exc))
    stats = {p.name: phase_stats(p, records.phases[p.name]) for p in plan.phases}
    return LoadStageResult(mode, count, stats, records.problems)


def run_stepped(
    target: Target,
    mode: str,
    params: Mapping[str, Any],
    profile: LoadProfile,
    *,
    client_timeout_s: float = 5.0,
    workers: int | None = None,
    remote: RemoteWorkers | None = None,
) -> SteppedResult:
    """ATS-PERF-04's steps in increasing rate until the first step not held.

    In full mode every step is its own locust run, so the stage stops at the first step the node
    does not hold; smoke steps are short and capped low, and run in one locust run.
    """
    count = _workers(profile, workers, remote)
    refusal = load_refusal(target)
    if refusal is not None:
        return SteppedResult(mode, None, error=refusal)
    steps = profile.stepped[mode]
    target_rate = float(params["target_rate_per_s"])
    rates = [f * target_rate for f in steps.factors if f * target_rate <= steps.max_rate_per_s]
    if not rates:
        return SteppedResult(
            mode,
            None,
            error=f"no step of {profile.source} stays within {steps.max_rate_per_s:g} req/s",
        )
    _, prefix = split_base_url(target.node.base_url)
    scenario = profile.scenarios[profile.stepped_scenario]
    phases = tuple(
        make_phase(
            f"step-{rate:g}",
            scenario,
            prefix=prefix,
            resources=target.resources,
            rate_per_s=rate,
            warmup_s=steps.warmup_s,
            window_s=steps.window_s,
            workers=count,
            generator=profile.generator,
            caps=profile.caps,
        )
        for rate in rates
    )
    batches = [(p,) for p in phases] if mode == "full" else [phases]
    measured: list[PhaseStats] = []
    problems: list[str] = []
    try:
        app_id, secret = _load_secret(target)
        for batch in batches:
            plan = _plan(target, app_id, batch, client_timeout_s, count, profile)
            records = _run(plan, secret, profile, remote)
            problems.extend(records.problems)
            batch_stats = [phase_stats(p, records.phases[p.name]) for p in batch]
            measured.extend(batch_stats)
            if not all(step_held(s, params) for s in batch_stats):
                break
    except (LoadRunError, LoadProfileError) as exc:
        return SteppedResult(mode, None, tuple(problems), error=str(exc))
    return SteppedResult(mode, saturation(measured, params), tuple(problems))
