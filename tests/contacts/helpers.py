"""Helpers for the contact route tests: create through the API, adjust stored values."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.accounts import repository as accounts_repo
from contacts_api.accounts import service as accounts
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table
from contacts_api.timeutil import utcnow
from tests.conftest import make_settings
from tests.factories import AccountFixture

Client = AsyncTestClient[Litestar]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Import into a test module whose tests send bursts (rate limits are tested elsewhere)."""
    return make_settings(database_url, rate_limit="100000/1")


async def create(client: Client, account: AccountFixture, **body: Any) -> dict[str, Any]:
    """POST a contact and return it (asserting it was created)."""
    response = await client.post("/v1/contacts", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    contact: dict[str, Any] = response.json()["data"]["contact"]
    return contact


async def set_columns(db: Database, contact_id: int, **values: Any) -> None:
    """Force stored values (times, owners) that the API sets by itself."""
    async with db.transaction() as conn:
        await conn.execute(
            sa.update(contact_table).where(contact_table.c.id == contact_id).values(**values)
        )


async def stored_contact(db: Database, contact_id: int) -> sa.Row[Any]:
    async with db.read() as conn:
        query = sa.select(contact_table).where(contact_table.c.id == contact_id)
        return (await conn.execute(query)).one()


async def second_user(db: Database, account: AccountFixture, email: str) -> AccountFixture:
    """Another user of the same account, with a key of their own."""
    async with db.transaction() as conn:
        user_id = await accounts_repo.insert_user(conn, account.account_id, email, utcnow())
        key = await accounts.create_key(conn, account.name, utcnow(), user_email=email)
    return AccountFixture(account.name, account.account_id, user_id, key)


async def list_contacts(client: Client, account: AccountFixture, **params: Any) -> Any:
    return await client.get("/v1/contacts", params=params, headers=account.headers)
