"""Service-level judgements of the PERF clauses: load statistics → PASS, FAIL or ERROR.

A judgement is ERROR when the measurement itself is unsound (the generator lagged behind its
schedule, or requests went missing); FAIL when the node breaks a threshold of its clause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.load.stats import PhaseStats


@dataclass(frozen=True)
class Judgement:
    """A judgement is a verdict (PASS, FAIL or ERROR) and the one-line reason for it."""

    verdict: str
    reason: str


def _measurement_problem(stats: PhaseStats, max_generator_lag_ms: float) -> str | None:
    if stats.scheduled == 0:
        return f"{stats.name}: no request was scheduled in the measured window"
    lag = stats.generator_lag_p99_ms
    if lag is not None and lag > max_generator_lag_ms:
        # The tester, not the node, fell behind: latency from the schedule would blame the node.
        return (
            f"{stats.name}: the load generator sent p99 {lag:g} ms behind schedule "
            f"(bound {max_generator_lag_ms:g} ms); add workers or free the tester's CPU"
        )
    return None


def judge_latency(
    stats: PhaseStats, params: Mapping[str, Any], *, max_generator_lag_ms: float
) -> Judgement:
    """ATS-PERF-01 / -02: rate held within tolerance, p95 (and p99) and failure ratio bounded."""
    problem = _measurement_problem(stats, max_generator_lag_ms)
    if problem is not None:
        return Judgement("ERROR", problem)
    broken: list[str] = []
    p95 = float(params["p95_ms"])
    if stats.p95_ms is not None and stats.p95_ms > p95:
        broken.append(f"p95 {stats.p95_ms:g} ms > {p95:g} ms")
    if "p99_ms" in params and stats.p99_ms is not None and stats.p99_ms > float(params["p99_ms"]):
        broken.append(f"p99 {stats.p99_ms:g} ms > {float(params['p99_ms']):g} ms")
    ratio = float(params["max_failure_ratio"])
    if stats.failure_ratio > ratio:
        broken.append(f"failures {stats.failure_ratio:.2%} > {ratio:.2%}")
    tolerance = float(params.get("rate_tolerance_ratio", 0.05))
    target = stats.target_rate_per_s
    held = abs(stats.rate_per_s - target) <= tolerance * target
    if not held and not broken:
        # Sends waited for free in-flight slots, yet the answers came in time: the generator
        # could not keep its rate, so the window does not show the node at the target rate.
        return Judgement(
            "ERROR",
            f"{stats.name}: the rate held was {stats.rate_per_s:g} req/s, not within "
            f"{tolerance:.0%} of {target:g} req/s",
        )
    if broken:
        return Judgement("FAIL", f"at {target:g} req/s: {'; '.join(broken)} — {stats.summary()}")
    return Judgement("PASS", stats.summary())


def judge_server_errors(stats: Sequence[PhaseStats], max_server_errors: int) -> Judgement:
    """ATS-PERF-03: the measured windows hold no more than ``max_server_errors`` 5xx answers."""
    count = sum(s.server_errors for s in stats)
    if count > max_server_errors:
        by_status: dict[str, int] = {}
        for s in stats:
            for status, n in s.failures_by_status.items():
                if status.isdigit() and int(status) >= 500:
                    by_status[status] = by_status.get(status, 0) + n
        shown = ", ".join(f"{n}× {k}" for k, n in sorted(by_status.items()))
        return Judgement(
            "FAIL",
            f"the measured windows hold {count} 5xx answers ({shown}); expected none",
        )
    windows = ", ".join(f"{s.name} {s.requests} requests" for s in stats)
    return Judgement("PASS", f"no 5xx answer in the measured windows ({windows})")


@dataclass(frozen=True)
class Saturation:
    """The outcome of a stepped load: the highest rate held and whether the steps ran out."""

    rate_per_s: float | None
    capped: bool
    steps: tuple[PhaseStats, ...]


def step_held(stats: PhaseStats, params: Mapping[str, Any]) -> bool:
    """A step is held when p95 and the failure ratio stay within ATS-PERF-04's bounds."""
    return (
        stats.p95_ms is not None
        and stats.p95_ms <= float(params["p95_ms"])
        and stats.failure_ratio <= float(params["max_failure_ratio"])
    )


def saturation(steps: Sequence[PhaseStats], params: Mapping[str, Any]) -> Saturation:
    """The highest step held before the first step that is not; capped when every step held."""
    held: float | None = None
    for step in steps:
        if not step_held(step, params):
            return Saturation(held, False, tuple(steps))
        held = step.target_rate_per_s
    return Saturation(held, True, tuple(steps))


def judge_saturation(
    found: Saturation, params: Mapping[str, Any], *, max_generator_lag_ms: float
) -> Judgement:
    """ATS-PERF-04: the saturation point is at least ``min_factor`` × the target rate."""
    for step in found.steps:
        problem = _measurement_problem(step, max_generator_lag_ms)
        if problem is not None:
            return Judgement("ERROR", problem)
    wanted = float(params["min_factor"]) * float(params["target_rate_per_s"])
    steps = "; ".join(
        f"{s.target_rate_per_s:g}/s p95 {s.p95_ms} ms failures {s.failure_ratio:.2%}"
        for s in found.steps
    )
    if found.rate_per_s is None:
        return Judgement(
            "FAIL",
            f"no step was held (p95 ≤ {float(params['p95_ms']):g} ms, failures ≤ "
            f"{float(params['max_failure_ratio']):.1%}); needed {wanted:g} req/s — {steps}",
        )
    point = f"{'at least ' if found.capped else ''}{found.rate_per_s:g} req/s"
    if found.rate_per_s < wanted:
        return Judgement("FAIL", f"saturation point {point}, below {wanted:g} req/s — {steps}")
    return Judgement("PASS", f"saturation point {point} (needed {wanted:g} req/s) — {steps}")
