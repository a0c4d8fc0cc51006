"""Assessment statistics (ATS chapter 10): call counts and the connectivity of children.

Calls are counted in memory on the hot path and written to the store every few seconds and at
shutdown, so the month's counts survive a restart. Children's health is probed with a 5 s timeout;
an answer uses a probe made at most 60 s before it (ATS §10).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from conformance import ats
from conformance.reference import clock

if TYPE_CHECKING:
    from conformance.reference.config import ChildConfig
    from conformance.reference.store import Store

PROBE_TIMEOUT_S = 5.0
# A probe older than this is redone before answering: far inside the 60 s the standard allows,
# so an operator sees a stopped child within seconds.
PROBE_MAX_AGE_S = 2.0


class CallCounter:
    """A call counter is the month's answered requests and failed ones (status ≥ 400)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._period = clock.period(clock.now())
        row = store.query(
            "SELECT calls_total, calls_failed FROM stats WHERE period = ?", (self._period,)
        )
        self.total: int = int(row[0][0]) if row else 0
        self.failed: int = int(row[0][1]) if row else 0

    def count(self, status: int) -> None:
        """One more answered request with this status."""
        current = clock.period(clock.now())
        if current != self._period:
            self.flush()
            self._period, self.total, self.failed = current, 0, 0
        self.total += 1
        if status >= 400:
            self.failed += 1

    @property
    def period(self) -> str:
        """The month being counted, ``YYYY-MM`` in +08:00."""
        return self._period

    def flush(self) -> None:
        """The counts are written to the store."""
        self._store.execute(
            "INSERT INTO stats (period, calls_total, calls_failed) VALUES (?, ?, ?) "
            "ON CONFLICT (period) DO UPDATE SET calls_total = excluded.calls_total, "
            "calls_failed = excluded.calls_failed",
            (self._period, self.total, self.failed),
        )


@dataclass(frozen=True)
class Probe:
    """A probe is how many children answered health, out of how many, and when (monotonic)."""

    up: int
    of: int
    at: float


class Connectivity:
    """The connectivity of a node's children, probed on health (系统联通率)."""

    def __init__(self, children: tuple[ChildConfig, ...]) -> None:
        self._children = children
        self._last: Probe | None = None
        self._lock = asyncio.Lock()

    async def _answers(self, client: httpx.AsyncClient, url: str) -> bool:
        try:
            response = await client.get(url.rstrip("/") + ats.HEALTH, timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def probe(self, client: httpx.AsyncClient) -> Probe:
        """A fresh probe of every child, all at once."""
        results = await asyncio.gather(*(self._answers(client, c.url) for c in self._children))
        self._last = Probe(sum(results), len(results), time.monotonic())
        return self._last

    async def rate(
        self, client: httpx.AsyncClient, fresh_within_s: float = PROBE_MAX_AGE_S
    ) -> float:
        """The share of children that answered a recent probe; 1 for a node without children."""
        if not self._children:
            return 1.0
        async with self._lock:
            last = self._last
            if last is None or time.monotonic() - last.at > fresh_within_s:
                last = await self.probe(client)
        return last.up / last.of


def collaborative_apps(store: Store, period: str) -> int:
    """Distinct (origin_node, origin_app) pairs with an allowed query this month (协同应用数)."""
    return int(
        store.scalar(
            "SELECT COUNT(*) FROM (SELECT DISTINCT origin_node, origin_app FROM audit "
            "WHERE action = 'QUERY' AND outcome = 'ALLOWED' AND substr(time, 1, 7) = ?)",
            (period,),
        )
    )


def stats_answer(
    *,
    period: str,
    systems_integrated: int,
    resources_total: int,
    resources_shared: int,
    collaborative: int,
    connectivity: float,
    calls_total: int,
    calls_failed: int,
) -> dict[str, Any]:
    """The body of ``GET /api/v1/stats`` (ATS-STAT-01)."""
    return {
        "period": period,
        "systems_integrated": systems_integrated,
        "resources_total": resources_total,
        "resources_shared": resources_shared,
        "collaborative_apps": collaborative,
        "connectivity_rate": connectivity,
        "calls_total": calls_total,
        "calls_failed": calls_failed,
    }
