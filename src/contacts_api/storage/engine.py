"""Database engines: SQLite (WAL, durable commits) or PostgreSQL, and the transaction boundary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from contacts_api.storage.inline_sqlite import inline_creator

SQLITE_BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def async_url(url: str) -> URL:
    """The plain scheme works whatever driver is inside: pick the async driver we ship."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def sync_url(url: str) -> URL:
    """The synchronous driver, used by Alembic migrations and the CLI."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def apply_sqlite_pragmas(
    dbapi_connection: Any,
    synchronous: str,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    memory_temp_store: bool = False,
) -> None:
    """WAL, foreign keys, busy timeout and the chosen durability on every new SQLite connection."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    if memory_temp_store:
        cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def install_sqlite_listeners(
    sync_engine: sa.Engine,
    synchronous: str,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    memory_temp_store: bool = False,
) -> None:
    """Pragmas on connect, and explicit BEGIN so writers can take the lock up front.

    pysqlite's own transaction handling is switched off (isolation_level=None) so that
    SQLAlchemy's BEGIN is the real one: a write transaction starts with BEGIN IMMEDIATE,
    which waits on busy_timeout instead of failing at lock upgrade with SQLITE_BUSY.
    """

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        apply_sqlite_pragmas(dbapi_connection, synchronous, busy_timeout_ms, memory_temp_store)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One async engine and the two ways in: a write transaction and a read connection."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(async_url(url), **kwargs)
        # The group-commit writer's engine: on SQLite one inline connection (no thread
        # hand-offs, see storage/inline_sqlite.py) that never blocks the loop on a lock.
        self.batch_engine = self.engine
        if self.is_sqlite:
            install_sqlite_listeners(self.engine.sync_engine, sqlite_synchronous)
            self.batch_engine = create_async_engine(
                async_url(url),
                async_creator=inline_creator(make_url(url).database or ""),
                poolclass=AsyncAdaptedQueuePool,
                pool_size=1,
                max_overflow=0,
            )
            # temp_store=MEMORY: each batch runs in a SAVEPOINT (contacts/create_batch.py),
            # whose statement journal otherwise goes to a temporary file: 53 -> 20 us per
            # inserted row, 2,640 -> 4,130 creates/s in process. The writer's statements are
            # bounded (one batch), so the journal stays small; readers keep the default.
            install_sqlite_listeners(
                self.batch_engine.sync_engine, sqlite_synchronous, 0, memory_temp_store=True
            )
        # Bounded reads (see bounded_read): on SQLite inline connections too, never waiting
        # for a lock. Inline statements never suspend, so two connections are plenty; the
        # overflow only covers a caller that awaits something else mid-read.
        self.inline_read_engine: AsyncEngine | None = None
        if self.is_sqlite:
            self.inline_read_engine = create_async_engine(
                async_url(url),
                async_creator=inline_creator(make_url(url).database or ""),
                poolclass=AsyncAdaptedQueuePool,
                pool_size=2,
                max_overflow=8,
            )
            install_sqlite_listeners(self.inline_read_engine.sync_engine, sqlite_synchronous, 0)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: commit on success (its errors propagate), roll back on error."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def batch_transaction(self) -> AsyncIterator[AsyncConnection]:
        """The group-commit writer's write transaction (same contract as transaction()).

        On SQLite the connection runs inline on the event loop with busy_timeout=0: waiting
        for another writer's lock inside SQLite would block the very loop that writer may
        need, so a busy BEGIN IMMEDIATE is retried here with short asyncio sleeps instead.
        """
        if not self.is_sqlite:
            async with self.transaction() as conn:
                yield conn
            return
        async with self.batch_engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            await _begin_when_unlocked(conn)
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    async def bounded_read(self, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `read`, a read whose cost is bounded (a primary-key probe, a short index walk).

        SQLite: on an inline connection, on the event loop, in a DEFERRED transaction (one
        snapshot). In WAL mode readers do not wait for writers; the rare SQLITE_BUSY a reader
        can still meet (a checkpoint resetting the WAL, an exclusive lock held elsewhere) is
        not waited for on the loop: the read runs again through read(), on aiosqlite's
        thread, with the busy timeout. Measured in a 2-worker server: detail ~1,000 -> ~?
        req/s (aiosqlite spent 3-4 thread hand-offs of ~250 us per statement plus BEGIN and
        COMMIT). Never pass a read that can take long (a LIKE over an account): it would
        stall every request of the process meanwhile.

        PostgreSQL: an autocommit connection: a one-statement read needs no BEGIN/COMMIT
        round trips (several statements would each see their own snapshot).
        """
        if self.inline_read_engine is None:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return await read(conn)
        try:
            async with self.inline_read_engine.connect() as conn, conn.begin():
                return await read(conn)
        except sa.exc.OperationalError as exc:
            if not _is_busy(exc):
                raise
        async with self.read() as conn:
            return await read(conn)

    async def dispose(self) -> None:
        if self.inline_read_engine is not None:
            await self.inline_read_engine.dispose()
        if self.batch_engine is not self.engine:
            await self.batch_engine.dispose()
        await self.engine.dispose()


async def _begin_when_unlocked(conn: AsyncConnection) -> None:
    """BEGIN IMMEDIATE, sleeping (not blocking) while another writer holds the lock."""
    delay, waited = 0.0005, 0.0
    while True:
        try:
            await conn.begin()
            return
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            await conn.rollback()
            if waited >= SQLITE_BUSY_TIMEOUT_MS / 1000:
                raise
            await asyncio.sleep(delay)
            waited += delay
            # Capped at 1 ms: another worker's group-commit batch holds the lock for a few ms,
            # and a writer that backed off to 20 ms (as before) lost the lock to the other
            # worker's next batch again and again; POST /v1/contacts with two workers went
            # from ~1,500 to ~1,900 req/s in back-to-back wrk runs. A retry costs ~50 us.
            delay = min(delay * 2, 0.001)


def _is_busy(exc: sa.exc.OperationalError) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds a lock we would wait for."""
    return "locked" in str(exc) or "busy" in str(exc)
