"""Pacing: the suite's own traffic stays under half of the node's per-app limit (ATS-SEC-03)."""

from __future__ import annotations

import threading
import time


class Pacer:
    """Per-app pacing keeping the suite under half of the node's per-app rate limit.

    A generic cell rate algorithm: each app may send ``burst`` requests at once and then
    ``rate`` per second, so no 1 s window holds more than ``burst + rate`` — half the limit.
    """

    def __init__(self, rate_limit_per_app: float | None = None) -> None:
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}
        self.rate_limit: float | None = None
        self.rate = 1.0
        self.burst = 1.0
        if rate_limit_per_app is not None:
            self.configure(rate_limit_per_app)

    def configure(self, rate_limit_per_app: float) -> None:
        """Sets the node's per-app limit (requests per second)."""
        limit = max(float(rate_limit_per_app), 2.0)
        self.burst = max(1.0, limit // 10)
        self.rate = max(limit / 2 - self.burst, limit / 4)
        self.rate_limit = limit

    def wait(self, app_id: str) -> None:
        """Blocks until ``app_id`` may send one more request."""
        interval = 1.0 / self.rate
        tolerance = (self.burst - 1) * interval
        with self._lock:
            now = time.monotonic()
            due = max(self._due.get(app_id, now), now)
            delay = max(0.0, due - tolerance - now)
            self._due[app_id] = due + interval
        if delay:
            time.sleep(delay)
