"""Bookable events (what a contact signed up for)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.service import account_id_by_name
from contacts_api.events import repository as repo


async def create_event(
    conn: AsyncConnection,
    account_name: str,
    name: str,
    now: datetime,
    *,
    link_prefix: str | None = None,
    event_type: str = "ONE_ON_ONE",
) -> int:
    account_id = await account_id_by_name(conn, account_name)
    return await repo.insert_event(
        conn,
        account_id=account_id,
        name=name,
        link_prefix=link_prefix,
        event_type=event_type,
        now=now,
    )
