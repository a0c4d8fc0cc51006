"""Per-app rate limiting over a sliding 1-second window (ATS-SEC-03)."""

from __future__ import annotations

import math
from collections import deque

WINDOW_S = 1.0


class RateLimiter:
    """A rate limiter admits at most ``limit`` requests per app in any 1-second window.

    Refused requests do not count, so an app that waits the announced ``Retry-After`` is served
    again (ATS-SEC-03). It is used from the event loop only.
    """

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}

    def admit(self, app_id: str, limit: int, now: float) -> int | None:
        """None when the request is admitted, else the whole seconds (≥ 1) to wait."""
        window = self._seen.setdefault(app_id, deque())
        horizon = now - WINDOW_S
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + WINDOW_S - now))
        window.append(now)
        return None
