"""Concurrent loads of one key share one load (the per-process caches' refresh)."""

from __future__ import annotations

import asyncio
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

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, should every caller have gone away

    def running(self) -> int:
        """How many loads are in flight (for tests)."""
        return len(self._running)
