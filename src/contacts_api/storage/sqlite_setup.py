"""Every SQLite connection's set-up: pragmas, our SQL functions, and BEGIN in our hands; the
files kept beside a database."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from contacts_api.storage.functions import register_sqlite_functions

SQLITE_BUSY_TIMEOUT_MS = 10_000


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
    register_sqlite_functions(dbapi_connection)


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
        options = conn.get_execution_options()
        # `sqlite_busy_ms`: a shorter wait for this transaction's lock (what is left of a
        # budget partly spent waiting for the writers' turn); the next one without it gets
        # the connection's own back. A PRAGMA only when it changes.
        busy_ms = int(options.get("sqlite_busy_ms", busy_timeout_ms))
        if conn.info.get("busy_timeout_ms", busy_timeout_ms) != busy_ms:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            conn.info["busy_timeout_ms"] = busy_ms
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")


WRITERS_LOCK = "-writers.lock"  # beside a SQLite database: storage/writer_turn.py
# What is kept beside a SQLite database file: SQLite's journals and the writers' turn.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal", WRITERS_LOCK)


def sqlite_files(url: str) -> list[Path]:
    """A SQLite database's file and those kept beside it (absolute, as the working directory
    makes them); none for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return []
    database = Path(parsed.database).absolute()
    return [database, *(database.with_name(database.name + end) for end in SQLITE_SIDE_FILES)]


def missing_folder(url: str) -> Path | None:
    """The folder a SQLite URL puts its file in, when there is no such folder: SQLite then says
    only "unable to open database file"."""
    files = sqlite_files(url)
    return files[0].parent if files and not files[0].parent.is_dir() else None


def missing_database_file(url: str) -> Path | None:
    """The SQLite file a URL names, when nothing is there: a command other than `db upgrade`
    and `serve` made an empty one (in whatever folder it ran in, when the URL was not the
    one meant) and then said to upgrade it."""
    files = sqlite_files(url)
    return files[0] if files and not files[0].exists() else None


def write_problem(url: str) -> str | None:
    """Why the server could not write the SQLite database `url` names (a read-only file, or a
    folder where SQLite cannot make its `-wal`), or None. Such a server started, answered
    /readyz, and answered every create with a 500; `db upgrade` had nothing to write."""
    files = sqlite_files(url)
    if not files:
        return None
    try:
        with contextlib.closing(sqlite3.connect(files[0], 5, isolation_level=None)) as conn:
            # A write, rolled back: SQLite opens a file it may not write read-only, and in
            # WAL mode even BEGIN IMMEDIATE then succeeds.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE contacts_api_write_probe (x)")
            finally:
                conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "unable to open" in str(exc):
            return (
                f"cannot write {files[0]}: {exc} (the server needs to write the file, and"
                " its folder for SQLite's -wal and -shm files beside it)"
            )
    return None  # busy (another writer): not a lasting problem
