"""The first and last instants a joinedTime can name, through every path that writes one.

asyncpg sends the two extreme datetimes it can hold as PostgreSQL's -infinity and infinity:
a joinedTime of 0001-01-01T00:00:00Z given to an update was stored as -infinity, and the
contact's detail and the account's listing then answered 500 (storage/pg_timestamps.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from contacts_api.storage.engine import Database
from tests.contacts.helpers import Client, create, list_contacts
from tests.factories import AccountFixture, new_account

FIRST = "0001-01-01T00:00:00.000Z"


@pytest.fixture
async def account(db: Database) -> AccountFixture:
    return await new_account(db)


async def stored_text(db: Database, contact_id: int) -> str:
    async with db.read() as conn:
        query = sa.text("SELECT CAST(joined_time AS TEXT) FROM contact WHERE id = :id")
        return str((await conn.execute(query, {"id": contact_id})).scalar_one())


@pytest.mark.parametrize("route", ["upsert", "bulk"])
async def test_the_first_instant_is_stored_and_read_back_as_itself(
    client: Client, db: Database, account: AccountFixture, route: str
) -> None:
    contact = await create(client, account, email="first@example.com", firstName="F")
    if route == "upsert":
        body = {"email": "first@example.com", "joinedTime": "0001-01-01T00:00:00Z"}
        response = await client.post("/v1/contacts", json=body, headers=account.headers)
    else:
        items = [{"email": "first@example.com", "joinedTime": FIRST}]
        response = await client.post("/v1/contacts/bulk", json=items, headers=account.headers)
    assert response.status_code == 200, response.text

    assert "infinity" not in await stored_text(db, contact["id"])
    detail = await client.get(
        "/v1/contacts/detail", params={"contactId": contact["id"]}, headers=account.headers
    )
    assert detail.status_code == 200, detail.text
    assert detail.json()["data"]["joinedTime"] == FIRST
    listed = await list_contacts(client, account, limit=50)  # the hot path
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"]["contacts"][0]["joinedTime"] == FIRST
    # The bound is the instant itself, not "-infinity": timeTo includes it.
    bounded = await list_contacts(client, account, timeTo="0001-01-01T00:00:00Z")
    assert bounded.json()["data"]["count"] == 1


async def test_an_infinity_stored_earlier_reads_as_the_instant_it_stood_for(
    client: Client, db: Database, account: AccountFixture
) -> None:
    if db.is_sqlite:
        pytest.skip("only PostgreSQL has infinite timestamps")
    contact = await create(client, account, email="old@example.com")
    async with db.transaction() as conn:
        await conn.execute(
            sa.text("UPDATE contact SET joined_time = '-infinity' WHERE id = :id"),
            {"id": contact["id"]},
        )
    detail = await client.get(
        "/v1/contacts/detail", params={"contactId": contact["id"]}, headers=account.headers
    )
    assert detail.status_code == 200, detail.text
    assert detail.json()["data"]["joinedTime"] == FIRST
    listed = await list_contacts(client, account, limit=50)
    assert listed.json()["data"]["contacts"][0]["joinedTime"] == FIRST
    searched = await list_contacts(client, account, search="old")  # the Core path
    assert searched.json()["data"]["contacts"][0]["joinedTime"] == FIRST
