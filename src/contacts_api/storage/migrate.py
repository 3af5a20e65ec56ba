"""Apply and inspect Alembic migrations shipped inside the package (no alembic.ini needed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from contacts_api.settings import redacted_url
from contacts_api.storage.drivers import sync_url
from contacts_api.storage.engine import is_sqlite
from contacts_api.storage.sqlite_setup import SQLITE_BUSY_TIMEOUT_MS, install_sqlite_listeners

MIGRATIONS = Path(__file__).parent / "migrations"
# Two upgrades at once (two hosts starting `serve` together) take turns: PostgreSQL's
# advisory lock under this key, SQLite's write lock (BEGIN IMMEDIATE), waited for this long.
# The second finds the schema at its head and has nothing to do.
UPGRADE_LOCK_KEY = 0x636F6E7461637473  # "contacts"
UPGRADE_WAIT_MS = 10 * 60 * 1000
# PostgreSQL: once the upgrade holds that lock, each statement waits at most this long for a
# table's lock. A statement waiting for one (an ALTER behind a long report or a backup) makes
# every later query of that table wait behind it: the running servers' creates read
# webhook_endpoint, and stalled for as long as the wait (it was the 10 minutes above). The
# upgrade is tried again after a pause, a few times, and then gives up, changing nothing.
STATEMENT_LOCK_WAIT_MS = 5_000
LOCK_ATTEMPTS = 4
LOCK_RETRY_PAUSE_S = 5.0
# An upgrading process that froze (a host stopped, its network gone) held its locks until
# the server's TCP keepalive noticed, two hours by default; its session now ends sooner.
IDLE_IN_UPGRADE_MS = 60_000
LOCK_NOT_AVAILABLE = "55P03"

SchemaState = Literal["current", "behind", "ahead"]


class _QuietAlembic(logging.Filter):
    """Alembic's "Running upgrade …" lines stay; its "Context impl SQLiteImpl." and "Will assume
    non-transactional DDL." at every start go (the latter wrong here: see upgrade())."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_QuietAlembic())


class TablesLocked(Exception):
    """Every try of the upgrade found a table it changes locked by another transaction."""


class UpgradeLockTimeout(Exception):
    """Another upgrade held the upgrade lock for longer than UPGRADE_WAIT_MS."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> set[str]:
    return set(_scripts().get_heads())


@cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def schema_state(revisions: set[str]) -> SchemaState:
    """Where a database's revisions stand: at this version's head, behind it (never upgraded,
    or not since an update), or ahead (a revision this version does not know: a newer
    contacts-api's)."""
    if revisions == head_revisions():
        return "current"
    return "ahead" if revisions - known_revisions() else "behind"


def sync_engine(database_url: str, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> sa.Engine:
    """A synchronous engine; on SQLite, with the server's pragmas and real transactions
    (SQLAlchemy's BEGIN, not pysqlite's, which left DDL outside any transaction)."""
    engine = sa.create_engine(sync_url(database_url), hide_parameters=True)
    if is_sqlite(database_url):
        install_sqlite_listeners(engine, "FULL", busy_timeout_ms)
    return engine


def upgrade(database_url: str, say: Callable[[str], None] | None = None) -> None:
    """Bring the database to the newest schema; creates the SQLite file when missing.

    All of it is one transaction, on SQLite too: an upgrade that fails or is killed part
    way leaves the schema as it was, and running it again starts afresh. `say` hears of
    waits (another upgrade under way, a table locked), which would otherwise be silent.
    """
    engine = sync_engine(database_url, UPGRADE_WAIT_MS)
    try:
        for attempt in range(1, LOCK_ATTEMPTS + 1):
            try:
                _upgrade_once(engine, say)
                return
            except sa.exc.OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                if attempt == LOCK_ATTEMPTS:
                    raise TablesLocked(str(exc.orig).strip()) from None
                if say is not None:
                    say(
                        f"a table the upgrade changes is locked by another transaction; trying"
                        f" again in {LOCK_RETRY_PAUSE_S:g} s ({attempt} of {LOCK_ATTEMPTS} tries)"
                    )
                time.sleep(LOCK_RETRY_PAUSE_S)
    finally:
        engine.dispose()


def _upgrade_once(engine: sa.Engine, say: Callable[[str], None] | None) -> None:
    with engine.connect() as connection:
        # Already at the head (every start of `serve`): a read, no lock to wait for.
        if current_revisions(connection) == head_revisions():
            return
        connection.rollback()
        connection = connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            if connection.dialect.name == "postgresql":
                _take_the_upgrade_lock(connection, say)
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")


def _take_the_upgrade_lock(connection: sa.Connection, say: Callable[[str], None] | None) -> None:
    """PostgreSQL: wait (saying so) for any other upgrade, then bound each statement's wait."""
    lock = {"key": UPGRADE_LOCK_KEY}
    idle = f"SET LOCAL idle_in_transaction_session_timeout = {IDLE_IN_UPGRADE_MS}"
    connection.execute(sa.text(idle))
    if not connection.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), lock).scalar():
        if say is not None:
            say(f"waiting for another upgrade of this database to finish{_holder(connection)}")
        connection.execute(sa.text(f"SET LOCAL lock_timeout = {UPGRADE_WAIT_MS}"))
        try:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), lock)
        except sa.exc.OperationalError as exc:  # not a table's lock: no try again
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise UpgradeLockTimeout from None  # (the note said who held it)
            raise
    connection.execute(sa.text(f"SET LOCAL lock_timeout = {STATEMENT_LOCK_WAIT_MS}"))


def _holder(connection: sa.Connection) -> str:
    """Who holds the upgrade lock, as far as this role may see: ` (backend N, from …)`."""
    row = connection.execute(
        sa.text(
            "SELECT a.pid, a.client_addr, a.xact_start FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
            " AND l.granted AND l.objsubid = 1"  # a bigint key (2: a pair of ints)
            " AND (l.classid::bigint << 32 | l.objid::bigint) = :key"
        ),
        {"key": UPGRADE_LOCK_KEY},
    ).first()
    if row is None:
        return ""
    # Either is NULL to a role that may not see other roles' sessions (or for a socket).
    origin = f", from {row.client_addr}" if row.client_addr else ""
    since = f", since {row.xact_start:%H:%M:%S %Z}" if row.xact_start else ""
    return f" (PostgreSQL backend {row.pid}{origin}{since})"


def database_schema_state(database_url: str) -> SchemaState:
    """Where the database's schema stands against this version's (see schema_state)."""
    engine = sync_engine(database_url)
    try:
        with engine.connect() as connection:
            return schema_state(current_revisions(connection))
    finally:
        engine.dispose()


def schema_advice(database_url: str, error: sa.exc.SQLAlchemyError) -> str | None:
    """What to do when a statement found no table or column (`error`) because the database is
    not at this version's schema (never upgraded, or not since an update); None for any other
    error, or when the schema is current or cannot be read. A command's `no such table:
    account` said nothing of the cause. Looked at only for such an error, when the database
    has just answered."""
    cause = getattr(error, "orig", None)
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    said = str(cause or error)
    # Undefined table or column: never upgraded, or one migration behind (0008 adds a column).
    if state not in ("42P01", "42703") and not (
        "no such table" in said or "no such column" in said
    ):
        return None
    try:
        state = database_schema_state(database_url)
    except sa.exc.SQLAlchemyError:
        return None
    return None if state == "current" else not_current(database_url, state)


def not_current(database_url: str, state: SchemaState) -> str:
    if state == "ahead":  # `db upgrade` would fail: there is no downgrade
        return (
            f"{redacted_url(database_url)} was upgraded by a newer contacts-api: run that"
            " version, or restore the backup taken before upgrading"
        )
    return (
        f"{redacted_url(database_url)} is not at this version's schema: run `contacts-api db"
        " upgrade` first (`serve` applies it too)"
    )


def current_revisions(connection: sa.Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())
