"""Small factories that create data through the same services the CLI uses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from contacts_api.accounts import service as accounts
from contacts_api.events import service as events
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table
from contacts_api.timeutil import utcnow


@dataclass(frozen=True)
class AccountFixture:
    name: str
    account_id: int
    user_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def new_account(
    db: Database,
    name: str = "acme",
    owner: str = "owner@acme.test",
    *,
    expires_at: datetime | None = None,
) -> AccountFixture:
    async with db.transaction() as conn:
        created = await accounts.create_account(conn, name, owner, utcnow())
        key = await accounts.create_key(conn, name, utcnow(), expires_at=expires_at)
    return AccountFixture(name, created.account_id, created.user_id, key)


async def new_event(
    db: Database, account: AccountFixture, name: str, link_prefix: str | None = None
) -> int:
    async with db.transaction() as conn:
        return await events.create_event(
            conn, account.name, name, utcnow(), link_prefix=link_prefix
        )


async def count_contacts(db: Database, account_id: int | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(contact_table)
    if account_id is not None:
        query = query.where(contact_table.c.account_id == account_id)
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def sqlite_file_with_account(path: Path) -> tuple[str, AccountFixture]:
    """A migrated SQLite database at `path` holding one account, for a real server to open."""
    from contacts_api.storage import migrate

    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        return url, await new_account(db)
    finally:
        await db.dispose()


def new_account_key(url: str) -> str:
    """A new account's key in the database at `url`, from synchronous code (a test that
    starts a server on that database)."""

    async def make() -> str:
        db = Database(url)
        try:
            return (await new_account(db)).key
        finally:
            await db.dispose()

    return asyncio.run(make())
