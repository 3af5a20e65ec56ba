"""Turns at SQLite's write lock for the group-commit writers of every worker process.

SQLite has one writer at a time, and a busy BEGIN IMMEDIATE is retried with short sleeps
(storage/engine.py), because the batch writer must not block its event loop. With two workers
each writer found the lock taken about every other batch and slept 0.5-1 ms at a time, often
past the moment the other worker committed: measured under wrk, each worker's writer spent a
quarter of the run waiting (~500 ms in every 2 s), with ~190 failed BEGINs a second.

Here those writers queue on an exclusive `flock` of a file beside the database, taken in a
thread when another process holds it, so the kernel hands it over the moment it is released.
Not the database file itself: closing any descriptor of a file drops the POSIX locks SQLite
holds on it. The turn orders our batch writers only: SQLite's lock stays the real guard, and
any other writer (a request's transaction, an import, the webhook dispatcher) is waited for
as before. A process that dies holding the turn loses it with its descriptors; a turn not
handed over within `wait_seconds` is gone without (the batch then meets SQLite's lock as
before), so a stuck process cannot stall the others for longer than SQLite would.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator


class WriterTurn:
    """An exclusive turn among the processes that open the same lock file."""

    def __init__(self, path: str, wait_seconds: float) -> None:
        self.path = path
        self.wait_seconds = wait_seconds
        self._fd: int | None = None

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[bool]:
        """Hold the turn for the block; yields whether it was had (False: waited too long,
        or the lock file cannot be opened)."""
        fd = self._open()
        have = fd is not None and await self._take(fd)
        try:
            yield have
        finally:
            if have and fd is not None:
                _unlock(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:  # a read-only directory, say: SQLite's lock alone still guards
                return None
        return self._fd

    async def _take(self, fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.wait_for(asyncio.shield(waiting), self.wait_seconds)
            return True
        except (TimeoutError, asyncio.CancelledError) as exc:
            # The thread still takes the turn once it is free: give it back at once then.
            def give_back(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    _unlock(fd)

            waiting.add_done_callback(give_back)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return False


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):  # closed meanwhile (dispose): the lock went with it
        fcntl.flock(fd, fcntl.LOCK_UN)
