"""Whether the event loop keeps running while something waits: ticks counted, not timed."""

from __future__ import annotations

import asyncio
from types import TracebackType


class LoopTicks:
    """Counts 10 ms sleeps completed on the running loop while the block runs. A wait that
    blocked the loop (a lock taken in SQLite's busy handler, a blocking flock) stops them."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopTicks:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self, *_exc: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()

    async def ten_more(self) -> None:
        """Return once ten more ticks have happened (wrap it in a timeout)."""
        start = self.count
        while self.count < start + 10:
            await asyncio.sleep(0.005)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.count += 1
