"""Bounded reads below SQLAlchemy's execution layer: Core statements compiled once, run on the
driver itself (Database.raw_read).

Why: a primary-key read through SQLAlchemy's async layer cost ~215 us of CPU even on an
inline SQLite connection (greenlet switches, a shielded close task per connection, result
processing), against ~20 us for the same statement on the sqlite3 connection, and the
reference machine has two cores for everything. The statements are still built with Core
(one source for both dialects); only compiling and fetching is done here. Rows come back as
the driver's tuples, *without* the column types' result processing: callers convert values
themselves (contacts/fast_read.py), and tests compare the answers with the Core path's.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from contacts_api.storage.snapshot_cache import SnapshotCache, Version

Rows = Sequence[Sequence[Any]]


class RawReader(Protocol):
    """Runs compiled statements inside one read (one snapshot)."""

    dialect_name: str
    # Results kept while the database is unchanged (storage/snapshot_cache.py), where the
    # snapshot has a version to check them against: the SQLite connection on the loop only.
    snapshots: SnapshotCache[Any] | None

    async def fetch(self, query: sa.Select[Any], params: dict[str, Any]) -> Rows: ...

    def snapshot_version(self) -> Version: ...


class Compiled:
    """A Core statement compiled for one dialect: positional SQL and its parameter order."""

    __slots__ = ("constants", "names", "sql")

    def __init__(self, query: sa.Select[Any], dialect: Dialect) -> None:
        compiled = query.compile(dialect=dialect)
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        # Values the statement itself carries (a dialect's rendered OFFSET 0, literals).
        self.constants = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if bind.effective_value is not None
        }

    def args(self, params: dict[str, Any]) -> list[Any]:
        constants = self.constants
        return [params[name] if name in params else constants[name] for name in self.names]


class CompiledCache:
    """Compiled statements by (statement, dialect); statements are module-level constants."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[int, tuple[sa.Select[Any], Compiled]] = {}

    def get(self, query: sa.Select[Any]) -> Compiled:
        hit = self._compiled.get(id(query))
        if hit is None or hit[0] is not query:
            hit = (query, Compiled(query, self.dialect))
            self._compiled[id(query)] = hit
        return hit[1]


class SqliteInlineReader:
    """On the event loop, on a sqlite3 connection that never waits for a lock."""

    dialect_name = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        cache: CompiledCache,
        snapshots: SnapshotCache[Any] | None = None,
    ) -> None:
        self.conn = conn
        self.cache = cache
        self.snapshots = snapshots

    async def fetch(self, query: sa.Select[Any], params: dict[str, Any]) -> Rows:
        compiled = self.cache.get(query)
        return self.conn.execute(compiled.sql, compiled.args(params)).fetchall()

    def snapshot_version(self) -> Version:
        """This connection and its `PRAGMA data_version` for this read (~1 us): the same for
        as long as nothing is committed to the file, whoever commits it
        (storage/snapshot_cache.py)."""
        version: int = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return self.conn, version


class SqliteThreadReader(SqliteInlineReader):
    """The fallback: the same statements in a worker thread, waiting on busy_timeout."""

    async def fetch(self, query: sa.Select[Any], params: dict[str, Any]) -> Rows:
        compiled = self.cache.get(query)
        args = compiled.args(params)
        return await asyncio.to_thread(lambda: self.conn.execute(compiled.sql, args).fetchall())


class AsyncpgReader:
    """One asyncpg connection in autocommit: each statement is its own snapshot."""

    dialect_name = "postgresql"
    # No cheap version of a snapshot to check a kept result against.
    snapshots: SnapshotCache[Any] | None = None

    def __init__(self, conn: Any, cache: CompiledCache) -> None:
        self.conn = conn
        self.cache = cache

    def snapshot_version(self) -> Version:
        raise NotImplementedError("PostgreSQL reads keep no results")

    async def fetch(self, query: sa.Select[Any], params: dict[str, Any]) -> Rows:
        compiled = self.cache.get(query)
        rows: Rows = await self.conn.fetch(compiled.sql, *compiled.args(params))
        return rows
