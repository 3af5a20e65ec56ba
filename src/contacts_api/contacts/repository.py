"""SQL for contacts and their tags. The only dialect differences live in small named functions."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.contacts.live_count import count_inserted
from contacts_api.storage.models import LIVE_EMAIL_KEY, contact_table, tag_table

ContactRow = sa.Row[Any]


class ContactSnapshot(SimpleNamespace):
    """A contact's columns as a batch just wrote them, read by attribute like a row.

    A group-committed batch knows every column it wrote (it built the values), so it answers
    from these instead of reading the rows back: one SELECT and its per-row processing less per
    batch (~1.1 ms of a 7 ms batch of 32 creates, measured in process on SQLite).
    """

    @classmethod
    def of(cls, values: Any) -> ContactSnapshot:
        """Every column of the contact table, from a mapping holding at least `id`."""
        return cls(**{column: values.get(column) for column in CONTACT_COLUMNS})


CONTACT_COLUMNS = tuple(contact_table.c.keys())
_LIVE_EMAIL_WHERE = sa.text(LIVE_EMAIL_KEY)


def _insert_for(conn: AsyncConnection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert


async def find_live_by_email_key(
    conn: AsyncConnection, account_id: int, email_key: str
) -> ContactRow | None:
    """The account's live contact with that email, locked for update on PostgreSQL."""
    query = sa.select(contact_table).where(
        contact_table.c.account_id == account_id,
        contact_table.c.email_key == email_key,
        contact_table.c.deleted_at.is_(None),
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def insert_contact(conn: AsyncConnection, values: dict[str, Any]) -> ContactRow | None:
    """Insert a contact; None when a live contact of the account already holds its email.

    ON CONFLICT on the partial unique index makes a concurrent create of the same email
    lose cleanly (no exception, no aborted transaction) instead of duplicating the contact.
    """
    statement = (
        _insert_for(conn)(contact_table)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["account_id", "email_key"], index_where=_LIVE_EMAIL_WHERE
        )
        .returning(*contact_table.c)
    )
    row = (await conn.execute(statement)).first()
    if row is not None and row.deleted_at is None:
        await count_inserted(conn, [row.account_id])
    return row


async def update_contact(
    conn: AsyncConnection, contact_id: int, values: dict[str, Any]
) -> ContactRow:
    statement = (
        sa.update(contact_table)
        .where(contact_table.c.id == contact_id)
        .values(**values)
        .returning(*contact_table.c)
    )
    return (await conn.execute(statement)).one()


async def get_live_contact(
    conn: AsyncConnection, account_id: int, contact_id: int
) -> ContactRow | None:
    query = sa.select(contact_table).where(
        contact_table.c.id == contact_id,
        contact_table.c.account_id == account_id,
        contact_table.c.deleted_at.is_(None),
    )
    return (await conn.execute(query)).first()


async def tag_id_for(conn: AsyncConnection, account_id: int, name: str, now: datetime) -> int:
    """The account's tag of exactly that name, created on first use (race-free)."""
    await conn.execute(
        _insert_for(conn)(tag_table)
        .values(account_id=account_id, name=name, created_at=now)
        .on_conflict_do_nothing(index_elements=["account_id", "name"])
    )
    result = await conn.execute(
        sa.select(tag_table.c.id).where(
            tag_table.c.account_id == account_id, tag_table.c.name == name
        )
    )
    return int(result.scalar_one())
