"""SQL for contact notes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.paging import Page
from contacts_api.storage.models import note_table

NoteRow = sa.Row[Any]


async def insert_note(
    conn: AsyncConnection,
    *,
    account_id: int,
    contact_id: int,
    user_id: int,
    note: str,
    now: datetime,
) -> NoteRow:
    statement = (
        sa.insert(note_table)
        .values(
            account_id=account_id,
            contact_id=contact_id,
            user_id=user_id,
            note=note,
            created_at=now,
        )
        .returning(*note_table.c)
    )
    return (await conn.execute(statement)).one()


async def list_notes(
    conn: AsyncConnection, contact_id: int, page: Page
) -> tuple[int, list[NoteRow]]:
    """The contact's notes, newest first, and how many it has."""
    where = note_table.c.contact_id == contact_id
    count = (await conn.execute(sa.select(sa.func.count()).where(where))).scalar_one()
    query = (
        sa.select(note_table)
        .where(where)
        .order_by(note_table.c.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    )
    return int(count), list((await conn.execute(query)).all())
