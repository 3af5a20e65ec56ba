"""Apply and inspect Alembic migrations shipped inside the package (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

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


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def sync_engine(database_url: str, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> sa.Engine:
    """A synchronous engine; on SQLite, with the server's pragmas and real transactions
    (SQLAlchemy's BEGIN, not pysqlite's, which left DDL outside any transaction)."""
    engine = sa.create_engine(sync_url(database_url), hide_parameters=True)
    if is_sqlite(database_url):
        install_sqlite_listeners(engine, "FULL", busy_timeout_ms)
    return engine


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema; creates the SQLite file when missing.

    All of it is one transaction, on SQLite too: an upgrade that fails or is killed part
    way leaves the schema as it was, and running it again starts afresh.
    """
    engine = sync_engine(database_url, UPGRADE_WAIT_MS)
    try:
        with engine.connect() as connection:
            # Already at the head (every start of `serve`): a read, no lock to wait for.
            if current_revisions(connection) == head_revisions():
                return
            connection.rollback()
            connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    wait = f"{UPGRADE_WAIT_MS}ms"
                    connection.execute(sa.text(f"SET LOCAL lock_timeout = '{wait}'"))
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY}
                    )
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "heads")
    finally:
        engine.dispose()


def is_current(database_url: str) -> bool:
    """Whether the database is at this version's schema (not behind it, nor ahead)."""
    engine = sync_engine(database_url)
    try:
        with engine.connect() as connection:
            return current_revisions(connection) == head_revisions()
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
        if is_current(database_url):
            return None
    except sa.exc.SQLAlchemyError:
        return None
    return not_current(database_url)


def not_current(database_url: str) -> str:
    return (
        f"{redacted_url(database_url)} is not at this version's schema: run `contacts-api db"
        " upgrade` first (`serve` applies it too)"
    )


def current_revisions(connection: sa.Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())
