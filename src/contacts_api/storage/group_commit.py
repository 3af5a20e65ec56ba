"""Group commit: concurrent write units share one transaction and one commit (one fsync).

With durable commits (SQLite `synchronous=FULL`, PostgreSQL's default) every commit waits for
the disk; one commit per request capped POST /v1/contacts near 200 req/s on the reference
machine, with the CPU mostly idle. Here requests queue their unit of work; one writer task runs
everything queued so far inside a single transaction, each unit in its own SAVEPOINT (so a
failing unit rolls back alone and fails only its own caller), commits once, and only then
answers each caller. A failed commit fails every unit of the batch: nothing is acknowledged
before it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.storage.engine import Database

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[Any]]
MAX_BATCH = 256


class GroupCommitter:
    """Runs write units for one process; start() on the serving loop, stop() to drain."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in the next batch; returns its result once the batch is committed."""
        if self._task is None or self._task.done():
            self._start()
        assert self._queue is not None
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((work, future))
        return await future

    def _start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._writer(), name="group-commit")

    async def stop(self) -> None:
        """Finish what is queued, then stop the writer."""
        if self._task is None or self._queue is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _writer(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)
            for _ in batch:
                self._queue.task_done()

    async def _commit(self, batch: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            async with self.db.transaction() as conn:
                for work, future in batch:
                    if future.cancelled():  # the caller went away before its turn
                        outcomes.append((False, None))
                        continue
                    try:
                        async with conn.begin_nested():
                            outcomes.append((True, await work(conn)))
                    except Exception as exc:  # fails this unit only
                        outcomes.append((False, exc))
        except Exception as exc:  # BEGIN or COMMIT failed: nothing in the batch is durable
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
