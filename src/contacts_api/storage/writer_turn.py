"""Turns at SQLite's write lock for the writers of every worker process (and of the CLI).

SQLite has one writer at a time, and a busy BEGIN IMMEDIATE is retried with short sleeps
(storage/engine.py), because the batch writer must not block its event loop. With two workers
each writer found the lock taken about every other batch and slept 0.5-1 ms at a time, often
past the moment the other worker committed: measured under wrk, each worker's writer spent a
quarter of the run waiting (~500 ms in every 2 s), with ~190 failed BEGINs a second.

Here those writers queue on an exclusive `flock` of a file beside the database. When another
process holds it, a thread blocks in `flock` and the kernel wakes it as soon as the holder lets
go. Not the database file itself: closing any descriptor of a file drops the POSIX locks
SQLite holds on it. A process that dies holding the turn loses it with its descriptors. A
turn not had within the caller's budget is done without, and the writer then meets SQLite's
lock as before (Database.batch_transaction, Database.transaction). SQLite's lock stays the
real guard: a program of another kind (a `sqlite3` shell) takes no turn and is waited for.

Every write transaction takes the turn, not only the batches: a request's own transaction
(PUT, DELETE, a note, a bulk request, an idempotency record, the webhook dispatcher's claims,
an import's batches) waited for SQLite's lock in its busy handler, which sleeps and retries,
and under a heavy create load the batches, handing the lock on to each other at once, left it
free only by chance: measured on two workers under wrk -c64 creates with 24 clients editing
beside them, the edits' p99 2.5 s, max 3.8 s (a review saw 10 s waits answered 503).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import queue
import threading
import time
from collections.abc import AsyncIterator

import structlog

log = structlog.get_logger(__name__)


class WriterTurn:
    """An exclusive turn among the writers of this process and of every process that opens
    the same lock file.

    In this process the writers queue first (`_Line`): a flock is held by the open file, so
    two writers of one process would both "have" it at once, and the first to let go would
    give it away under the other. The one at the head of the line then takes the flock. At
    most one thread waits for the flock at a time: a wait that timed out or was cancelled is
    taken over by the next one, and gives the turn back at once if nobody wants it by then.
    """

    def __init__(self, path: str, like: str | None = None) -> None:
        self.path = path
        self.like = like  # the database file, whose owner and mode a new lock file takes
        self._line: tuple[asyncio.AbstractEventLoop, _Line] | None = None
        self._fd: int | None = None
        self._unusable = False
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = False  # whether a caller is awaiting `_waiter`
        self._closing = False
        self._flocker = _Flocker()

    @contextlib.asynccontextmanager
    async def held(self, wait_seconds: float, *, first: bool = False) -> AsyncIterator[bool]:
        """Hold the turn for the block; yields whether it was had (False: not within
        `wait_seconds`, or the lock file cannot be opened). `first`: go before this
        process's other writers waiting (the group-commit batch, see `_Line`)."""
        deadline = time.monotonic() + wait_seconds
        line = self._local_line()
        if not await line.join(wait_seconds, first):
            yield False  # another writer of this process holds it: its flock is not ours
            return
        try:
            fd = self._open()
            left = deadline - time.monotonic()
            have = fd is not None and await self._take(fd, left)
            try:
                yield have
            finally:
                if have and fd is not None:
                    _unlock(fd)
        finally:
            line.leave()

    def _local_line(self) -> _Line:
        """This process's line for the turn, on the running loop (a Database can outlive
        its loop: the tests run one loop per test)."""
        loop = asyncio.get_running_loop()
        if self._line is None or self._line[0] is not loop:
            self._line = (loop, _Line())
        return self._line[1]

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
                self._fd = self._open_or_make()
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

    def _open_or_make(self) -> int:
        """The lock file, made if missing with the database file's mode and, when we are
        root, its owner, as SQLite makes its -wal and -shm files: every program that shares
        the database opens it. Made 0600 by whoever came first, a command run as root (an
        import, `keys create`) left the server's own user without turns."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        if self.like is not None:
            with contextlib.suppress(OSError):  # the database gone meanwhile: 0600, ours
                database = os.stat(self.like)
                os.fchmod(fd, database.st_mode & 0o666)
                if os.geteuid() == 0 and database.st_uid != 0:
                    os.fchown(fd, database.st_uid, database.st_gid)
        return fd

    async def _take(self, fd: int, wait_seconds: float) -> bool:
        waiter = self._waiter
        if waiter is not None and waiter.get_loop() is not asyncio.get_running_loop():
            # Asked on a loop that ended before the flock came: its thread gives the flock
            # back by itself (_Flocker._serve), then serves our ask.
            waiter = self._waiter = None
        elif waiter is None:
            # Not while a thread waits in flock: the flock is the descriptor's, so once that
            # thread had it this would succeed too, and its callback (`_waiter_done`, finding
            # the writer that asked gone) would then give it back under us.
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
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


class _Line:
    """This process's writers waiting for the turn, in order, except that a writer asking to
    go `first` (the group-commit batch) goes before the others waiting: its one turn commits
    up to 512 creates, another's a single request. The batch writer is one, and it is not
    waiting when it lets go, so the others are not shut out: batches and the rest alternate.
    Measured on two workers under wrk -c64 creates, with clients editing beside them as fast
    as they could (PUT, DELETE, notes, bulk requests of 20), 15 s each:
    - 4 clients: no turn for the edits 5,833 creates/s, edits p99 1.05 s; in plain order
      3,099 creates/s, p99 36 ms (a batch waited behind every edit queued, each its own
      fsync); batches first 4,272 creates/s, p99 64 ms;
    - 24 clients: no turn 4,266 creates/s, p99 2.5 s (max 3.8 s); plain order 917
      creates/s, p99 135 ms; batches first 4,236 creates/s, p99 251 ms (max 0.63 s).
    """

    def __init__(self) -> None:
        self._held = False
        self._first: collections.deque[asyncio.Future[None]] = collections.deque()
        self._others: collections.deque[asyncio.Future[None]] = collections.deque()

    async def join(self, wait_seconds: float, first: bool) -> bool:
        """Wait to be at the head of the line; whether it came within `wait_seconds`."""
        if not self._held:
            self._held = True
            return True
        waiting = self._first if first else self._others
        turn = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            async with asyncio.timeout(max(wait_seconds, 0)):
                await turn
            return True
        except TimeoutError:
            return turn.done() and not turn.cancelled()  # handed over as the wait ran out
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()  # handed over as the waiter went: on to the next
            raise
        finally:
            if not turn.done():
                turn.cancel()
            with contextlib.suppress(ValueError):
                waiting.remove(turn)

    def leave(self) -> None:
        """Hand the turn to the next writer waiting, if any."""
        for waiting in (self._first, self._others):
            while waiting:
                turn = waiting.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._held = False


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
