"""Database engines: SQLite (WAL, durable commits) or PostgreSQL, and the transaction boundary."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from contacts_api.storage import drivers, pg_timestamps, retry
from contacts_api.storage.drivers import async_url
from contacts_api.storage.inline_sqlite import inline_creator
from contacts_api.storage.raw_read import (
    AsyncpgReader,
    CompiledCache,
    RawReader,
    SqliteInlineReader,
    SqliteThreadReader,
)
from contacts_api.storage.snapshot_cache import SnapshotCache
from contacts_api.storage.sqlite_setup import (
    SQLITE_BUSY_TIMEOUT_MS,
    WRITERS_LOCK,
    apply_sqlite_pragmas,
    install_sqlite_listeners,
)
from contacts_api.storage.writer_turn import WriterTurn

T = TypeVar("T")
# PostgreSQL connections per process for Database.raw_read, besides the engine's pool.
READ_POOL_SIZE = 10
# Listing pages kept per process while the SQLite file is unchanged (~85 KiB for a page of
# 50 contacts, ~125 KiB for 100: at most ~4 MiB).
SNAPSHOT_CACHE_ENTRIES = 32


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


IDLE_PING_SECONDS = 1.0


def compact_json(value: Any) -> str:
    """JSON columns' text as the create paths store it (msgspec: no spaces, UTF-8). The hot
    reads hand a stored `tracking` to the client as it is (contacts/fast_read.py), so an
    update must not store it spaced (json.dumps, SQLAlchemy's default) where a create
    stored it compact."""
    return msgspec.json.encode(value).decode()


def ping_when_idle(engine: sa.Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only when it sat unused for `idle_seconds`:
    a connection the server dropped meanwhile (a restart, a failover) is replaced before use,
    as pool_pre_ping does, without a round trip per checkout while it is busy. (SQLAlchemy's
    recipe: DisconnectionError from a checkout listener makes the pool reconnect.)"""

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < idle_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise sa.exc.DisconnectionError("connection lost while idle") from exc


class Database:
    """Engines and ways in: transaction(_retrying), read, batch_transaction, raw_read."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        # hide_parameters: a failed statement's error (logged with its traceback) would
        # otherwise carry its parameters, the contacts' emails, phones and notes.
        kwargs: dict[str, Any] = {"json_serializer": compact_json, "hide_parameters": True}
        if not self.is_sqlite:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            kwargs["connect_args"] = drivers.connect_arguments(url)
        self.engine: AsyncEngine = create_async_engine(async_url(url), **kwargs)
        # The group-commit writer's engine: on SQLite one inline connection (no thread
        # hand-offs, see storage/inline_sqlite.py) that never blocks the loop on a lock.
        self.batch_engine = self.engine
        self._writer_turn: WriterTurn | None = None
        if self.is_sqlite:
            # temp_store=MEMORY here too: a statement journal (kept by any statement a trigger
            # may fire for, such as the live-count update triggers, or inside a savepoint)
            # spills to a temporary file past 64 KiB; while INSERTs had a trigger too
            # (migration 0005, until 0006), the import's one-row executemany paid for it
            # (20,000 rows: 1.4-1.6 s of CPU in memory, 2.0-2.2 s with the default). Sorts that
            # would spill stay in memory too: listings sort only a page's ids (top-N).
            install_sqlite_listeners(
                self.engine.sync_engine,
                sqlite_synchronous,
                SQLITE_BUSY_TIMEOUT_MS,
                memory_temp_store=True,
            )
            self.batch_engine = create_async_engine(
                async_url(url),
                async_creator=inline_creator(make_url(url).database or ""),
                poolclass=AsyncAdaptedQueuePool,
                pool_size=1,
                max_overflow=0,
                json_serializer=compact_json,
                hide_parameters=True,
            )
            # temp_store=MEMORY: each batch runs in a SAVEPOINT (contacts/create_batch.py),
            # whose statement journal otherwise goes to a temporary file: 53 -> 20 us per
            # inserted row, 2,640 -> 4,130 creates/s in process. The writer's statements are
            # bounded (one batch), so the journal stays small (raw_read's keep the default).
            install_sqlite_listeners(
                self.batch_engine.sync_engine, sqlite_synchronous, 0, memory_temp_store=True
            )
            path = make_url(url).database
            if path and path != ":memory:":
                self._writer_turn = WriterTurn(f"{path}{WRITERS_LOCK}", like=path)
        else:
            # PostgreSQL: the writer's connections are busy back to back under load, where a
            # pre-ping is one more round trip per batch (each costing a turn of a busy event
            # loop); they are pinged only after an idle second instead (ping_when_idle).
            # Measured, POST /v1/contacts with 2 workers: 2,100-2,250 -> 2,700-2,900 req/s.
            # One connection: a second writer per process was slower (2,600-2,800 against
            # 3,050-3,100 req/s with one), its batches being smaller for the same statements.
            self.batch_engine = create_async_engine(
                async_url(url),
                pool_size=1,
                max_overflow=0,
                json_serializer=compact_json,
                hide_parameters=True,
                connect_args=kwargs["connect_args"],
            )
            ping_when_idle(self.batch_engine.sync_engine, IDLE_PING_SECONDS)
            for engine in (self.engine, self.batch_engine):
                pg_timestamps.install(engine.sync_engine)
        # Bounded reads on SQLite (raw_read): one sqlite3 connection used on the event loop.
        self._sqlite_synchronous = sqlite_synchronous
        self._inline_reader: sqlite3.Connection | None = None
        self._inline_reader_in_use = False
        self._compiled = CompiledCache(self.engine.dialect)
        self._snapshots: SnapshotCache[Any] = SnapshotCache(SNAPSHOT_CACHE_ENTRIES)
        self._asyncpg_pool: asyncio.Future[Any] | None = None  # raw reads on PostgreSQL

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: commit on success (its errors propagate), roll back on error.

        On SQLite it takes the writers' turn first (storage/writer_turn.py), for BEGIN to
        COMMIT, as the batches do, and the turn and SQLite's lock share one budget: a turn
        that came late (or not at all) leaves BEGIN only the rest of it. Each had the whole
        budget: a request waited 10 s for a turn that never came, then 10 s more for the lock
        that the turn's holder kept, before its 503. A wait under a second leaves SQLite's
        own budget whole (shortening it costs a PRAGMA, a round trip to the driver's thread).
        """
        started = time.monotonic()
        async with self.engine.connect() as conn, self._turn():
            if self.is_sqlite:
                waited_ms = (time.monotonic() - started) * 1000
                options: dict[str, object] = {"sqlite_begin": "IMMEDIATE"}
                if waited_ms >= 1000:
                    options["sqlite_busy_ms"] = max(int(SQLITE_BUSY_TIMEOUT_MS - waited_ms), 0)
                conn = await conn.execution_options(**options)
            async with conn.begin():
                yield conn

    def _turn(self, *, first: bool = False) -> AbstractAsyncContextManager[bool | None]:
        if self._writer_turn is None:
            return nullcontext()
        return self._writer_turn.held(SQLITE_BUSY_TIMEOUT_MS / 1000, first=first)

    async def transaction_retrying(
        self, work: Callable[[AsyncConnection], Awaitable[T]], what: str
    ) -> T:
        """`work` in a write transaction, run again (up to storage.retry.ATTEMPTS in all)
        when PostgreSQL aborts it to break a deadlock. `work` must keep no state of its own
        across runs: all it did went with the rollback."""
        for attempt in range(1, retry.ATTEMPTS + 1):
            try:
                async with self.transaction() as conn:
                    return await work(conn)
            except (sa.exc.DBAPIError, retry.RaceLost) as exc:
                if attempt == retry.ATTEMPTS or not retry.is_retryable(exc):
                    raise
                await retry.before_retry(exc, attempt, what)
        raise AssertionError("unreachable")

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
        The batch writers of every worker process first queue for their turn
        (storage/writer_turn.py), so they rarely find that lock held.
        """
        if not self.is_sqlite:
            async with self.batch_engine.connect() as conn, conn.begin():
                yield conn
            return
        # One budget for the turn and SQLite's lock together, as busy_timeout would give.
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        turn = self._turn(first=True)
        # The connection is had before the turn and handed back after it: the turn covers
        # BEGIN to COMMIT only, not the pool's checkout and check-in. Timed under wrk, the
        # turn was held 4.6-5.1 -> 4.1-4.5 ms a batch; creates/s stayed within the noise.
        async with self.batch_engine.connect() as conn, turn:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            await _begin_when_unlocked(conn, deadline)
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    async def raw_read(self, read: Callable[[RawReader], Awaitable[T]]) -> T:
        """Run `read`, a read whose cost is bounded (a primary-key probe, a short index walk),
        on the driver itself (storage/raw_read.py).

        SQLite: on the event loop, in one DEFERRED transaction (one snapshot), on a connection
        that never waits for a lock: in WAL mode readers do not wait for writers, and the rare
        SQLITE_BUSY a reader can still meet (an exclusive lock held elsewhere, a WAL reset)
        is not waited for on the loop: the read runs again in a worker thread, on a
        connection with the usual busy timeout. Never pass a read that can take long (a LIKE
        over an account, a count): it would stall every request of the process meanwhile.
        Measured, one detail read in process: 680 us through aiosqlite, 215 us through
        SQLAlchemy on an inline connection, ~20 us here.

        PostgreSQL: an asyncpg connection of a pool of its own, in autocommit: no pre-ping and
        no BEGIN/COMMIT round trips, so each statement is its own snapshot.
        """
        if not self.is_sqlite:
            return await self._asyncpg_read(read)
        if not self._inline_reader_in_use:  # (a read that suspended would be a caller's bug)
            self._inline_reader_in_use = True
            try:
                conn = self._inline_reader or self._open_inline_reader()
                conn.execute("BEGIN")
                try:
                    return await read(SqliteInlineReader(conn, self._compiled, self._snapshots))
                finally:
                    conn.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            finally:
                self._inline_reader_in_use = False
        return await self._sqlite_thread_read(read)

    def _open_inline_reader(self) -> sqlite3.Connection:
        conn = _sqlite_connect(self.url, timeout_ms=0)
        try:
            apply_sqlite_pragmas(conn, self._sqlite_synchronous, 0)
        except sqlite3.Error:
            conn.close()
            raise
        self._inline_reader = conn
        self._snapshots.clear()  # kept with another connection's data_version
        return conn

    async def _sqlite_thread_read(self, read: Callable[[RawReader], Awaitable[T]]) -> T:
        conn = await asyncio.to_thread(_sqlite_connect, self.url, SQLITE_BUSY_TIMEOUT_MS)
        try:
            await asyncio.to_thread(conn.execute, "BEGIN")
            return await read(SqliteThreadReader(conn, self._compiled))
        finally:
            await asyncio.to_thread(conn.close)

    async def _asyncpg_read(self, read: Callable[[RawReader], Awaitable[T]]) -> T:
        """On a pool of its own, without SQLAlchemy's pre-ping: the ping was one round trip
        of two (detail in process: 317 us of CPU with it). An asyncpg connection learns by
        itself that the server closed it; one that fails anyway (a restart not yet seen)
        makes the pool drop every connection it holds, and the read, which changes nothing,
        runs once more on a new one. While the server is down that fails too: 503."""
        if self._asyncpg_pool is None:
            self._asyncpg_pool = asyncio.ensure_future(self._open_asyncpg_pool())
        try:
            pool = await self._asyncpg_pool
        except BaseException:
            self._asyncpg_pool = None
            raise
        for attempt in (1, 2):
            try:
                async with pool.acquire() as conn:
                    return await read(AsyncpgReader(conn, self._compiled))
            except (
                OSError,
                asyncpg.PostgresConnectionError,
                asyncpg.InterfaceError,  # the connection is gone
                asyncpg.exceptions.OperatorInterventionError,  # terminated by a shutdown
            ):
                if attempt == 2:
                    raise
                pool.expire_connections()
        raise AssertionError("unreachable")

    async def _open_asyncpg_pool(self) -> Any:
        return await asyncpg.create_pool(
            **drivers.pool_arguments(self.url),
            min_size=0,
            max_size=READ_POOL_SIZE,
            max_inactive_connection_lifetime=300,
            server_settings={"TimeZone": "UTC"},
            init=_timestamps_as_text,
            reset=_nothing_to_reset,
        )

    async def dispose(self) -> None:
        pool_future, self._asyncpg_pool = self._asyncpg_pool, None
        if pool_future is not None and pool_future.done() and not pool_future.exception():
            pool = pool_future.result()
            try:
                await asyncio.wait_for(pool.close(), 5)
            except TimeoutError:
                pool.terminate()
        if self._writer_turn is not None:
            self._writer_turn.close()
        if self._inline_reader is not None:
            self._inline_reader.close()
            self._inline_reader = None
        if self.batch_engine is not self.engine:
            await self.batch_engine.dispose()
        await self.engine.dispose()


async def _begin_when_unlocked(conn: AsyncConnection, deadline: float) -> None:
    """BEGIN IMMEDIATE, sleeping (not blocking) while another writer holds the lock, until
    `deadline` (time.monotonic())."""
    delay = 0.0005
    while True:
        try:
            await conn.begin()
            return
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            await conn.rollback()
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(delay)
            # Capped at 1 ms: another worker's group-commit batch holds the lock for a few ms,
            # and a writer that backed off to 20 ms (as before) lost the lock to the other
            # worker's next batch again and again; POST /v1/contacts with two workers went
            # from ~1,500 to ~1,900 req/s in back-to-back wrk runs. A retry costs ~50 us.
            delay = min(delay * 2, 0.001)


async def _timestamps_as_text(conn: Any) -> None:
    """timestamptz as PostgreSQL writes it (`2024-01-15 10:00:00.123+00` in a UTC session):
    the wire's text is a few slices away, cheaper than a datetime and format_time (4 times
    per contact: ~1.5 us each here, ~300 us of a 50-contact page)."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=str, decoder=str, format="text"
    )


async def _nothing_to_reset(conn: Any) -> None:
    """The read pool's connections only run reads in autocommit: no SET, LISTEN, advisory
    lock or cursor outlives one. asyncpg's default reset sent `SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;` on every release, one
    round trip in two of every hot read. A connection left inside a transaction is still
    rolled back: asyncpg does that itself before calling this. Alternated wrk runs (two
    workers): PostgreSQL's CPU per detail 215-241 -> 158-178 us, detail 2,808 -> 3,058
    req/s and the list 1,066 -> 1,168 req/s (means of four runs each)."""


def _sqlite_connect(url: str, timeout_ms: int) -> sqlite3.Connection:
    """A plain sqlite3 connection in autocommit mode (our BEGIN is the real one)."""
    return sqlite3.connect(
        make_url(url).database or "",
        timeout=timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
