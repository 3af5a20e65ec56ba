"""The migrations and the models describe the same schema, on both databases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from contacts_api.contacts.json_insert import INSERT_COLUMNS
from contacts_api.storage import migrate
from contacts_api.storage.models import Base
from tests.run_suite import create_throwaway_database, drop_database
from tests.services import postgres_url, unavailable


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            revisions = migrate.current_revisions(conn)
    finally:
        engine.dispose()
    if engine.dialect.name == "postgresql":
        # Migration 0002 builds the listing indexes' nullable text columns NULLS FIRST on
        # PostgreSQL (matching SQLite's NULL ordering), which the models cannot express.
        differences = [
            d
            for d in differences
            if not (
                d[0] in ("add_index", "remove_index") and d[1].name.startswith("ix_contact_live_")
            )
        ]
    assert differences == []
    assert revisions == migrate.head_revisions()


def test_no_inserted_contact_column_has_a_database_default(database_url: str) -> None:
    """The SQLite import leaves out the columns empty in a whole batch and counts on them being
    NULL (contacts/import_repository.py): a default would silently change imported contacts."""
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as conn:
            columns = sa.inspect(conn).get_columns("contact")
    finally:
        engine.dispose()
    defaults = {c["name"]: c.get("default") for c in columns if c["name"] in INSERT_COLUMNS}
    assert set(defaults) == set(INSERT_COLUMNS)
    assert {name: default for name, default in defaults.items() if default is not None} == {}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind with no schema at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    postgres_url()  # skips, or fails in CI, without PostgreSQL
    created = create_throwaway_database()
    if created is None:
        unavailable("PostgreSQL does not answer on 127.0.0.1:5432")
    assert created is not None
    admin, url = created
    try:
        yield url
    finally:
        drop_database(admin, url)


def upgrade_to(url: str, revision: str) -> None:
    engine = migrate.sync_engine(url)
    try:
        with engine.begin() as connection:
            config = migrate.alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def schema_state(url: str) -> tuple[set[str], set[str]]:
    """(revisions, names of the contact table's indexes)."""
    engine = migrate.sync_engine(url)
    try:
        with engine.connect() as conn:
            indexes = {str(i["name"]) for i in sa.inspect(conn).get_indexes("contact")}
            return migrate.current_revisions(conn), indexes
    finally:
        engine.dispose()


def run_sql(url: str, statement: str) -> None:
    engine = migrate.sync_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def test_an_upgrade_that_fails_part_way_leaves_the_schema_as_it_was(empty_database: str) -> None:
    """Migration 0002 builds nine indexes, then the `note` table. When the table cannot be
    made, the indexes are gone too (on SQLite they stayed, outside any transaction, and every
    later upgrade failed on them), and once the cause is removed the upgrade runs."""
    upgrade_to(empty_database, "0001")
    run_sql(empty_database, "CREATE TABLE note (in_the_way INTEGER)")
    with pytest.raises(sa.exc.SQLAlchemyError):
        migrate.upgrade(empty_database)
    revisions, indexes = schema_state(empty_database)
    assert revisions == {"0001"}
    assert not any(name.startswith("ix_contact_live_") for name in indexes)

    run_sql(empty_database, "DROP TABLE note")
    migrate.upgrade(empty_database)
    revisions, indexes = schema_state(empty_database)
    assert revisions == migrate.head_revisions()
    assert "ix_contact_live_created_at" in indexes


def start_upgrade(url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "contacts_api", "db", "upgrade"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(upgrades: list[subprocess.Popen[str]], within: float = 120) -> list[tuple[int, str]]:
    """Each upgrade's exit status and output; one still running after `within` seconds is
    killed (it waits on another forever) and fails the test."""
    try:
        return [(u.wait(timeout=within), u.communicate()[0]) for u in upgrades]
    finally:
        for upgrade in upgrades:
            if upgrade.poll() is None:
                upgrade.kill()
                upgrade.wait()


def test_upgrades_started_together_take_turns(empty_database: str) -> None:
    """Hosts starting `serve` together each run the upgrade: one waits for the other, then
    finds nothing to do (on PostgreSQL they could wait on each other for good, on SQLite
    fail on each other's tables)."""
    outcomes = finish([start_upgrade(empty_database) for _ in range(3)])
    assert [status for status, _ in outcomes] == [0] * 3
    for _, output in outcomes:  # on PostgreSQL, one that waits says so
        assert output == "" or output.startswith(WAITING_NOTE), output
    assert schema_state(empty_database)[0] == migrate.head_revisions()


def waits_for_the_lock(url: str, upgrade: subprocess.Popen[str]) -> bool:
    """Whether the upgrade, still running, waits: on PostgreSQL, seen waiting for the advisory
    lock; on SQLite (whose lock waits are not visible), still running after 2 s."""
    if not url.startswith("postgresql"):
        time.sleep(2.0)
        return upgrade.poll() is None
    engine = migrate.sync_engine(url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and upgrade.poll() is None:
            with engine.connect() as conn:
                waiting = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                ).scalar_one()
            if waiting:
                return upgrade.poll() is None
            time.sleep(0.1)
        return False
    finally:
        engine.dispose()


@contextmanager
def upgrade_lock_held(url: str) -> Iterator[sa.Connection]:
    """A transaction holding what an upgrade waits for: PostgreSQL's advisory lock, SQLite's
    write lock (BEGIN IMMEDIATE)."""
    engine = migrate.sync_engine(url)
    try:
        with engine.connect() as holder:
            holder = holder.execution_options(sqlite_begin="IMMEDIATE")
            with holder.begin():
                if holder.dialect.name == "postgresql":
                    holder.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": migrate.UPGRADE_LOCK_KEY},
                    )
                yield holder
    finally:
        engine.dispose()


WAITING_NOTE = "note: waiting for another upgrade of this database to finish"


def test_an_upgrade_waits_for_one_in_progress(empty_database: str) -> None:
    """While another upgrade holds the lock (here, the test), an upgrade waits for it; on
    PostgreSQL it says so, and who holds it (it waited up to 10 minutes in silence)."""
    with upgrade_lock_held(empty_database) as holder:
        pid = None
        if holder.dialect.name == "postgresql":
            pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        waiting = start_upgrade(empty_database)
        still_waiting = waits_for_the_lock(empty_database, waiting)
        holder.commit()
    [(status, output)] = finish([waiting])
    assert status == 0, output
    if pid is None:
        assert output == ""
    else:
        assert output.startswith(f"{WAITING_NOTE} (PostgreSQL backend {pid}, "), output
    assert still_waiting
    assert schema_state(empty_database)[0] == migrate.head_revisions()


def test_a_table_locked_through_every_try_is_given_up_changing_nothing(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: migration 0008 alters webhook_endpoint, which a long transaction (a report,
    a backup) reads. The ALTER waited for it up to 10 minutes, and meanwhile every query of
    the table queued behind the ALTER: the running servers' creates stalled as long. Each
    statement now waits a bounded time; the upgrade is tried again, then given up."""
    if not empty_database.startswith("postgresql"):
        pytest.skip("SQLite takes its one write lock before any statement")
    upgrade_to(empty_database, "0007")
    monkeypatch.setattr(migrate, "STATEMENT_LOCK_WAIT_MS", 200)
    monkeypatch.setattr(migrate, "LOCK_RETRY_PAUSE_S", 0.01)
    monkeypatch.setattr(migrate, "LOCK_ATTEMPTS", 2)
    said: list[str] = []
    engine = migrate.sync_engine(empty_database)
    try:
        with engine.connect() as reader:
            with reader.begin():
                reader.exec_driver_sql("SELECT count(*) FROM webhook_endpoint")  # holds its lock
                started = time.monotonic()
                with pytest.raises(migrate.TablesLocked, match="lock timeout"):
                    migrate.upgrade(empty_database, say=said.append)
                assert time.monotonic() - started < 30
            assert said == [
                "a table the upgrade changes is locked by another transaction; trying again in"
                " 0.01 s (1 of 2 tries)"
            ]
            assert schema_state(empty_database)[0] == {"0007"}
    finally:
        engine.dispose()
    migrate.upgrade(empty_database)  # the reader is done
    assert schema_state(empty_database)[0] == migrate.head_revisions()


def test_an_upgrade_held_up_past_the_wait_gives_up_once(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait for another upgrade is not a table's lock: it was taken for one, tried again
    4 times (40 minutes, not 10), and said a table was locked."""
    if not empty_database.startswith("postgresql"):
        pytest.skip("SQLite's wait is its busy timeout, one statement")
    monkeypatch.setattr(migrate, "UPGRADE_WAIT_MS", 300)
    monkeypatch.setattr(migrate, "LOCK_RETRY_PAUSE_S", 0.01)
    said: list[str] = []
    with upgrade_lock_held(empty_database), pytest.raises(migrate.UpgradeLockTimeout):
        migrate.upgrade(empty_database, say=said.append)
    assert len(said) == 1 and said[0].startswith("waiting for another upgrade"), said
    assert migrate.database_schema_state(empty_database) == "behind"  # nothing was done


def test_an_upgrade_with_nothing_to_do_waits_for_no_lock(database_url: str) -> None:
    """Every `serve` start runs the upgrade: at the head it only reads, so it does not queue
    behind a writer (or another host's upgrade) holding the lock."""
    with upgrade_lock_held(database_url):
        assert finish([start_upgrade(database_url)], within=30) == [(0, "")]


# The count triggers the migrations leave (0005; 0006 dropped SQLite's insert trigger, whose
# count the writers keep). compare_metadata sees neither triggers nor index predicates.
TRIGGERS = {
    "sqlite": {"contact_live_count_delete", "contact_live_count_update"},
    "postgresql": {
        "contact_live_count_insert",
        "contact_live_count_delete",
        "contact_live_count_update",
    },
}


def predicate(text: str) -> str:
    """An index's WHERE as either database writes it back, made comparable."""
    text = re.sub(r"::[a-z ]+", "", text.lower())  # PostgreSQL's casts ('pending'::text)
    return " ".join(text.replace("(", " ").replace(")", " ").split())


def test_partial_indexes_and_count_triggers_are_as_the_models_say(database_url: str) -> None:
    expected = {
        index.name: predicate(str(index.dialect_options["sqlite"]["where"]))
        for table in Base.metadata.sorted_tables
        for index in table.indexes
        if index.dialect_options["sqlite"].get("where") is not None
    }
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                rows = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes"))
                triggers = conn.execute(
                    sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
                )
            else:
                rows = conn.execute(
                    sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                )
                triggers = conn.execute(
                    sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                )
            found = {
                name: predicate(sql.split(" WHERE ", 1)[1]) if sql and " WHERE " in sql else None
                for name, sql in rows
            }
            trigger_names = set(triggers.scalars())
    finally:
        engine.dispose()
    assert {name: found.get(name) for name in expected} == expected
    assert trigger_names == TRIGGERS[engine.dialect.name]
