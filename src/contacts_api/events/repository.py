"""SQL for bookable events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.storage.models import event_table


async def insert_event(
    conn: AsyncConnection,
    *,
    account_id: int,
    name: str,
    link_prefix: str | None,
    event_type: str,
    now: datetime,
) -> int:
    result = await conn.execute(
        sa.insert(event_table)
        .values(
            account_id=account_id,
            name=name,
            link_prefix=link_prefix,
            event_type=event_type,
            created_at=now,
        )
        .returning(event_table.c.id)
    )
    return int(result.scalar_one())


async def find_event_id(
    conn: AsyncConnection,
    account_id: int,
    *,
    event_id: int | None = None,
    link_prefix: str | None = None,
    name: str | None = None,
) -> int | None:
    """The account's event picked by id, else link prefix, else exact name (oldest first)."""
    query = sa.select(event_table.c.id).where(event_table.c.account_id == account_id)
    if event_id is not None:
        query = query.where(event_table.c.id == event_id)
    elif link_prefix is not None:
        query = query.where(event_table.c.link_prefix == link_prefix)
    elif name is not None:
        query = query.where(event_table.c.name == name)
    else:
        return None
    result = await conn.execute(query.order_by(event_table.c.id).limit(1))
    value = result.scalar_one_or_none()
    return None if value is None else int(value)


async def get_event(conn: AsyncConnection, event_id: int) -> sa.Row[Any] | None:
    """One event by id (id, name, link_prefix, event_type...)."""
    query = sa.select(event_table).where(event_table.c.id == event_id)
    return (await conn.execute(query)).first()


async def list_events(
    conn: AsyncConnection, account_id: int, *, limit: int, offset: int
) -> tuple[int, list[sa.Row[Any]]]:
    """A page of the account's events (oldest first) and how many it has."""
    where = event_table.c.account_id == account_id
    count = (await conn.execute(sa.select(sa.func.count()).where(where))).scalar_one()
    query = (
        sa.select(event_table).where(where).order_by(event_table.c.id).limit(limit).offset(offset)
    )
    return int(count), list((await conn.execute(query)).all())
