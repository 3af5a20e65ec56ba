"""A PostgreSQL URL's libpq parameters reach asyncpg as libpq would read them (drivers.py).

`?sslmode=...`, as managed PostgreSQL URLs carry, passed `db upgrade` (psycopg) and then
failed every connection the server made with a TypeError from asyncpg.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

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
