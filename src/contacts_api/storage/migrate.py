"""Apply and inspect Alembic migrations shipped inside the package (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from contacts_api.storage.engine import is_sqlite, sync_url
from contacts_api.storage.sqlite_setup import apply_sqlite_pragmas

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def sync_engine(database_url: str) -> sa.Engine:
    engine = sa.create_engine(sync_url(database_url), hide_parameters=True)
    if is_sqlite(database_url):
        sa.event.listen(engine, "connect", lambda conn, _rec: apply_sqlite_pragmas(conn, "FULL"))
    return engine


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema; creates the SQLite file when missing."""
    engine = sync_engine(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
    finally:
        engine.dispose()


def current_revisions(connection: sa.Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())
