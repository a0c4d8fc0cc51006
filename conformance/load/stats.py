"""Load statistics of one phase: rate held, latency percentiles, failures and a timeline.

Percentiles are nearest-rank over every request scheduled in the measured window, failed ones
included (a timeout counts with its full latency). Latency runs from the scheduled instant
(ATS §12), so it holds the time a send waited for a free in-flight slot too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance.load.plan import Phase
from conformance.load.runner import PhaseRecords


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in 0‥1) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(math.ceil(fraction * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def is_failure(status: int) -> bool:
    """A failure is a non-2xx answer or no answer at all (ATS §12)."""
    return not 200 <= status < 300


@dataclass(frozen=True)
class PhaseStats:
    """What one phase measured, as the PERF clauses judge it and the report shows it."""

    name: str
    scenario: str
    target_rate_per_s: float
    warmup_s: float
    window_s: float
    requests: int
    scheduled: int
    rate_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    failures: int
    failure_ratio: float
    failures_by_status: dict[str, int]
    failures_by_code: dict[str, int]
    server_errors: int
    generator_lag_p99_ms: float | None
    timeline: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """The statistics as report.json's ``load`` member holds them."""
        return {
            "name": self.name,
            "scenario": self.scenario,
            "target_rate_per_s": self.target_rate_per_s,
            "warmup_s": self.warmup_s,
            "window_s": self.window_s,
            "requests": self.requests,
            "scheduled": self.scheduled,
            "rate_per_s": self.rate_per_s,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "failures": self.failures,
            "failure_ratio": self.failure_ratio,
            "failures_by_status": dict(self.failures_by_status),
            "failures_by_code": dict(self.failures_by_code),
            "server_errors": self.server_errors,
            "generator_lag_p99_ms": self.generator_lag_p99_ms,
            "timeline": [dict(t) for t in self.timeline],
        }

    def summary(self) -> str:
        """One line: rate held, percentiles, failures."""
        return (
            f"{self.name}: {self.rate_per_s:g} of {self.target_rate_per_s:g} req/s over "
            f"{self.window_s:g} s, {self.requests} requests, p50 {self.p50_ms} ms, "
            f"p95 {self.p95_ms} ms, p99 {self.p99_ms} ms, {self.failures} failures "
            f"({self.failure_ratio:.2%})"
            + (f" {_counts(self.failures_by_status)}" if self.failures_by_status else "")
        )


def _counts(counts: dict[str, int]) -> str:
    return "[" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + "]"


def phase_stats(phase: Phase, recorded: PhaseRecords) -> PhaseStats:
    """The statistics of a phase from its merged records."""
    records = recorded.records
    latencies = sorted(r[1] for r in records)
    # Requests actually sent inside the window: the rate the generator held (ATS §12: ±5 %).
    sent = sum(1 for r in records if 0 <= r[0] + (r[2] + r[3]) / 1000 < phase.window_s)
    failed = [r for r in records if is_failure(r[4])]
    by_status = Counter(str(r[4]) if r[4] else (r[5] or "TRANSPORT_ERROR") for r in failed)
    by_code = Counter(r[5] or "none" for r in failed)
    lags = sorted(r[2] for r in records)
    return PhaseStats(
        name=phase.name,
        scenario=phase.scenario,
        target_rate_per_s=phase.rate_per_s,
        warmup_s=phase.warmup_s,
        window_s=phase.window_s,
        requests=len(records),
        scheduled=recorded.scheduled,
        rate_per_s=round(sent / phase.window_s, 2),
        p50_ms=_ms(percentile(latencies, 0.50)),
        p95_ms=_ms(percentile(latencies, 0.95)),
        p99_ms=_ms(percentile(latencies, 0.99)),
        max_ms=_ms(latencies[-1] if latencies else None),
        failures=len(failed) + max(recorded.scheduled - len(records), 0),
        failure_ratio=round(
            (len(failed) + max(recorded.scheduled - len(records), 0)) / recorded.scheduled, 6
        )
        if recorded.scheduled
        else 0.0,
        failures_by_status=dict(by_status),
        failures_by_code=dict(by_code),
        server_errors=sum(1 for r in records if r[4] >= 500),
        generator_lag_p99_ms=_ms(percentile(lags, 0.99)),
        timeline=_timeline(records, phase.window_s),
    )


def _timeline(
    records: Sequence[tuple[float, float, float, float, int, str | None]], window_s: float
) -> tuple[dict[str, Any], ...]:
    seconds = max(math.ceil(window_s), 1)
    buckets: list[list[tuple[float, int]]] = [[] for _ in range(seconds)]
    for offset, latency, _lag, _waited, status, _code in records:
        second = min(max(int(offset), 0), seconds - 1)
        buckets[second].append((latency, status))
    timeline = []
    for second, bucket in enumerate(buckets):
        latencies = sorted(b[0] for b in bucket)
        timeline.append(
            {
                "t": second,
                "rate": len(bucket),
                "p50_ms": _ms(percentile(latencies, 0.50)),
                "p95_ms": _ms(percentile(latencies, 0.95)),
                "failures": sum(1 for b in bucket if is_failure(b[1])),
            }
        )
    return tuple(timeline)
