"""An aiosqlite-shaped connection that runs sqlite3 calls inline, on the calling thread.

aiosqlite hands every call to a thread: three or four round trips per statement (cursor,
execute, fetch, close), ~250 us each on the reference machine, so a group-committed batch of
32 creates spent ~38 of them (9.5 ms in process, ~18 ms in a loaded server) in hand-offs.
SQLite statements themselves take microseconds, so the group-commit writer runs them inline
instead (handed to SQLAlchemy through `create_async_engine(async_creator=...)`).

Only the writer uses it, and with busy_timeout=0: a writer blocking the event loop while it
waits for the lock could wait on a transaction that needs this very loop to finish, so a busy
BEGIN IMMEDIATE is retried with asyncio sleeps instead (Database.batch_transaction).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any


class InlineCursor:
    """The async cursor API SQLAlchemy's aiosqlite adapter calls, done synchronously."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        self._cursor.execute(sql, parameters or ())
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _InlineQueue:
    """Stands in for aiosqlite's work queue (SQLAlchemy sets isolation_level through it)."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """What `aiosqlite.connect()` returns, minus the thread."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._conn: sqlite3.Connection | None = None
        self._tx = _InlineQueue()

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        if self._conn is None:
            # timeout=0: never wait for a lock inside SQLite (see the module docstring).
            self._conn = sqlite3.connect(self._database, timeout=0, check_same_thread=False)
        return self
        yield  # makes this a generator, so that `await connection` works

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        assert self._conn is not None
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        assert self._conn is not None
        return InlineCursor(self._conn.cursor())

    async def commit(self) -> None:
        """The one call that leaves the loop: COMMIT waits for the disk (fsync of the WAL
        with synchronous=FULL, ~1 ms a batch here), and sqlite3 releases the GIL meanwhile,
        so the loop goes on parsing requests. It takes no lock (the transaction holds the
        write lock already), so it cannot wait on another writer."""
        assert self._conn is not None
        await asyncio.get_running_loop().run_in_executor(None, self._conn.commit)

    async def rollback(self) -> None:
        assert self._conn is not None
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        assert self._conn is not None
        self._conn.create_function(*args, **kwargs)


def inline_creator(path: str) -> Callable[[], InlineConnection]:
    """An `async_creator` for create_async_engine: inline connections to this file."""
    return lambda: InlineConnection(path)
