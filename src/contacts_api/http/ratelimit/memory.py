"""In-process fixed-window counters: exact for one worker process, nothing to run beside it."""

from __future__ import annotations

import time
from collections.abc import Callable

from contacts_api.http.ratelimit import Decision
from contacts_api.settings import Rate

# Expired windows are dropped in one sweep once this many keys have piled up, so memory stays
# bounded by the number of keys active within one window without a sweep on every hit.
SWEEP_AT = 10_000


class MemoryLimiter:
    """Counters in a dict: key -> [count, window end (epoch seconds)]."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, list[float]] = {}
        self._sweep_at = SWEEP_AT

    async def hit(self, key: str, rate: Rate) -> Decision:
        """Count one request; never fails."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None or window[1] <= now:
            if len(self._windows) >= self._sweep_at:
                self._sweep(now)
            window = [0, now + rate.window]
            self._windows[key] = window
        window[0] += 1
        return Decision.of(int(window[0]), rate, window[1], now)

    def _sweep(self, now: float) -> None:
        self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
        self._sweep_at = max(SWEEP_AT, 2 * len(self._windows))

    async def close(self) -> None:
        self._windows.clear()
