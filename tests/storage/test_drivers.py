"""A PostgreSQL URL's libpq parameters reach asyncpg as libpq would read them (drivers.py).

`?sslmode=...`, as managed PostgreSQL URLs carry, passed `db upgrade` (psycopg) and then
failed every connection the server made with a TypeError from asyncpg.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from contacts_api.storage import drivers, migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.raw_read import AsyncpgReader
from tests.factories import new_account, new_account_key
from tests.servers import serve

PARAMETERS = "sslmode=disable&application_name=contacts-api-test&connect_timeout=5"


@pytest.fixture
def pg_url_with_parameters(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's URL parameters; a SQLite URL has none")
    return f"{database_url}?{PARAMETERS}"


async def test_every_connection_takes_the_url_parameters(pg_url_with_parameters: str) -> None:
    db = Database(pg_url_with_parameters)
    try:
        account = await new_account(db)  # the engine's pool
        async with db.batch_transaction() as conn:  # group commit's own connection
            batch_name = (await conn.execute(sa.text("SHOW application_name"))).scalar_one()

        async def read(reader: AsyncpgReader) -> str:  # the raw asyncpg pool of raw_read
            return str(await reader.conn.fetchval("SHOW application_name"))

        raw_name = await db.raw_read(read)
        async with db.read() as conn:
            name = (await conn.execute(sa.text("SHOW application_name"))).scalar_one()
    finally:
        await db.dispose()
    assert account.account_id > 0
    assert name == batch_name == raw_name == "contacts-api-test"


def test_the_server_serves_on_a_url_with_parameters(
    pg_url_with_parameters: str, tmp_path: Path
) -> None:
    key = new_account_key(pg_url_with_parameters)
    env = {"CONTACTS_API_DATABASE_URL": pg_url_with_parameters}
    with serve(env, log=tmp_path / "server.log") as base:
        headers = {"Authorization": f"Bearer {key}"}
        created = httpx.post(
            f"{base}/v1/contacts", json={"email": "a@example.com"}, headers=headers
        )
        listed = httpx.get(f"{base}/v1/contacts?limit=50", headers=headers)
    assert created.status_code == 201, created.text
    assert listed.status_code == 200 and listed.json()["data"]["contacts"][0]["email"] == (
        "a@example.com"
    )


async def test_a_database_named_by_dbname_is_the_one_every_connection_uses(
    pg_url_with_parameters: str,
) -> None:
    """`postgresql://USER@HOST/?dbname=DB`: psycopg migrated DB while asyncpg, reading the
    empty path first, used the database named as the user."""
    base, _, _ = pg_url_with_parameters.partition("?")
    server, _, name = base.rpartition("/")
    url = f"{server}/?dbname={name}&{PARAMETERS}"
    engine = migrate.sync_engine(url)
    with engine.connect() as sync_conn:
        migrated = sync_conn.execute(sa.text("SELECT current_database()")).scalar_one()
    engine.dispose()
    db = Database(url)
    try:
        async with db.read() as conn:
            served = (await conn.execute(sa.text("SELECT current_database()"))).scalar_one()

        async def read(reader: AsyncpgReader) -> str:
            return str(await reader.conn.fetchval("SELECT current_database()"))

        read_raw = await db.raw_read(read)
    finally:
        await db.dispose()
    assert migrated == served == read_raw == name


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # A key given twice is libpq's list (hosts tried in turn): asyncpg kept the last.
        (
            "postgresql://u@/db?host=10.0.0.1&host=10.0.0.2",
            {"timeout": 10.0, "dsn": "postgresql://u@/db?host=10.0.0.1%2C10.0.0.2"},
        ),
        # 0 is "no limit" to libpq: a server's connection attempt would then hang for good.
        ("postgresql://u@h/db?connect_timeout=0", {"timeout": 10.0}),
        ("postgresql://u@h/db?connect_timeout=3", {"timeout": 3.0}),
    ],
    ids=["repeated-host", "timeout-0", "timeout-3"],
)
def test_libpq_parameters_as_asyncpg_takes_them(url: str, expected: dict[str, object]) -> None:
    assert drivers.connect_arguments(url) == expected


def test_pgconnect_timeout_is_taken_when_the_url_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "4")
    assert drivers.connect_arguments("postgresql://u@h/db") == {"timeout": 4.0}
    assert "connect_timeout" not in drivers.sync_url("postgresql://u@h/db").query  # libpq's own
    monkeypatch.delenv("PGCONNECT_TIMEOUT")
    assert drivers.sync_url("postgresql://u@h/db").query["connect_timeout"] == "10"
