"""Concurrent loads of one key share one load (the per-process caches' refresh)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """`run(key, load)` starts `load()` unless one for `key` is already running, and every
    caller gets that one load's result (or exception).

    Without it, an expired cache entry under load was refreshed by every request in flight:
    profiled under wrk (SQLite creates, 32 requests in flight per worker), the key cache's
    refresh reads were ~4 % of a worker's CPU, 32 identical reads every two seconds.
    The load runs as a task of its own, so a caller that is cancelled (its client went away)
    cancels neither the load nor the other callers' wait.
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        # A load older than this is not joined: a caller starts a fresh one instead, so one
        # load stuck on a dead connection cannot hold every later request for its key.
        self.max_age = max_age
        self.clock = clock
        self._running: dict[K, tuple[float, asyncio.Task[V]]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = self.clock()
        running = self._running.get(key)
        if running is not None and now - running[0] <= self.max_age:
            task = running[1]
        else:
            task = asyncio.ensure_future(load())
            self._running[key] = (now, task)
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        running = self._running.get(key)
        if running is not None and running[1] is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, should every caller have gone away
