"""Turns at SQLite's write lock for the group-commit writers of every worker process.

SQLite has one writer at a time, and a busy BEGIN IMMEDIATE is retried with short sleeps
(storage/engine.py), because the batch writer must not block its event loop. With two workers
each writer found the lock taken about every other batch and slept 0.5-1 ms at a time, often
past the moment the other worker committed: measured under wrk, each worker's writer spent a
quarter of the run waiting (~500 ms in every 2 s), with ~190 failed BEGINs a second.

Here those writers queue on an exclusive `flock` of a file beside the database. When another
process holds it, a thread blocks in `flock` and the kernel wakes it as soon as the holder lets
go. Not the database file itself: closing any descriptor of a file drops the POSIX locks
SQLite holds on it. The turn orders our batch writers only: SQLite's lock stays the real
guard, and any other writer (a request's transaction, an import, the webhook dispatcher) is
waited for as before. A process that dies holding the turn loses it with its descriptors. A
turn not had within the caller's budget is done without, and the batch then meets SQLite's
lock as before, within what is left of the same budget (Database.batch_transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import AsyncIterator

import structlog

log = structlog.get_logger(__name__)


class WriterTurn:
    """An exclusive turn among the processes that open the same lock file.

    At most one thread waits for the turn at a time: a wait that timed out or was cancelled
    is taken over by the next one, and gives the turn back at once if nobody wants it by then.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._unusable = False
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = False  # whether a caller is awaiting `_waiter`
        self._closing = False
        self._flocker = _Flocker()

    @contextlib.asynccontextmanager
    async def held(self, wait_seconds: float) -> AsyncIterator[bool]:
        """Hold the turn for the block; yields whether it was had (False: not within
        `wait_seconds`, or the lock file cannot be opened)."""
        fd = self._open()
        have = fd is not None and await self._take(fd, wait_seconds)
        try:
            yield have
        finally:
            if have and fd is not None:
                _unlock(fd)

    def close(self) -> None:
        """Close the lock file (once a thread still waiting in `flock` has returned)."""
        self._closing = True
        if self._fd is not None and self._waiter is None:
            os.close(self._fd)
            self._fd = None
        self._flocker.stop(wait=self._waiter is None)

    def _open(self) -> int | None:
        if self._fd is None and not self._unusable and not self._closing:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                try:  # made by another user, say: flock works on a read-only descriptor too
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    self._unusable = True
                    log.warning(
                        "writer turn lock file unusable: workers' writers poll SQLite's lock",
                        path=self.path,
                        error=f"{type(exc).__name__}: {exc}",
                    )
        return self._fd

    async def _take(self, fd: int, wait_seconds: float) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = self._flocker.take(fd)
            waiter.add_done_callback(lambda done: self._waiter_done(fd, done))
        self._wanted = True
        try:
            await asyncio.wait_for(asyncio.shield(waiter), wait_seconds)
            return True
        except (TimeoutError, asyncio.CancelledError) as exc:
            self._wanted = False
            got_it = waiter.done() and not waiter.cancelled() and waiter.exception() is None
            if got_it and isinstance(exc, TimeoutError):
                return True  # handed over as the wait ran out
            if got_it:
                _unlock(fd)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return False

    def _waiter_done(self, fd: int, done: asyncio.Future[None]) -> None:
        self._waiter = None
        took = not done.cancelled() and done.exception() is None
        if took and not self._wanted:
            _unlock(fd)  # the caller gave up meanwhile: give the turn back at once
        if self._closing:
            self.close()


class _Flocker:
    """A thread of its own that waits in flock(LOCK_EX) when asked (not the default executor,
    which the COMMIT of a batch needs), each wait resolved on the asking loop.

    One thread for the life of the turn, not one started for each contended turn (hundreds a
    second under wrk; `Thread.start` waits on the loop until the new thread runs). py-spy put
    the turn at 3.3 % of a worker's loop with a thread each, 2.5 % with this; creates/s moved
    within this machine's noise.
    """

    def __init__(self) -> None:
        self._asks: queue.SimpleQueue[tuple[int, asyncio.Future[None]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def take(self, fd: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="writer-turn", daemon=True)
            self._thread.start()
        self._asks.put((fd, future))
        return future

    def stop(self, wait: bool) -> None:
        """Let the thread end once it is out of flock; `wait`: until it has (it is not in it)."""
        if self._thread is not None:
            self._asks.put(None)
            if wait:
                self._thread.join(timeout=5)
            self._thread = None

    def _serve(self) -> None:
        while (ask := self._asks.get()) is not None:
            fd, future = ask
            error: BaseException | None = None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException as exc:
                error = exc
            try:
                future.get_loop().call_soon_threadsafe(_settle, future, error)
            except RuntimeError:  # the loop closed meanwhile: nobody will use the turn
                if error is None:
                    _unlock(fd)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
