"""Bookable events (what a contact signed up for)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.schemas import Principal
from contacts_api.accounts.service import account_id_by_name
from contacts_api.errors import UserError, ValidationFailed
from contacts_api.events import repository as repo
from contacts_api.events.schemas import EventListQuery, EventRead
from contacts_api.paging import Page
from contacts_api.timeutil import format_time
from contacts_api.validation import check_query, rules_for


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
    try:
        return await repo.insert_event(
            conn,
            account_id=account_id,
            name=name,
            link_prefix=link_prefix,
            event_type=event_type,
            now=now,
        )
    except sqlalchemy.exc.IntegrityError:  # the one unique rule: a link prefix per account
        raise UserError(
            f"account {account_name!r} already has an event with link prefix {link_prefix!r}"
        ) from None


def parse_event_list_query(params: Mapping[str, str]) -> Page:
    """The page of GET /v1/events."""
    values, errors = check_query(params, rules_for(EventListQuery))
    if errors:
        raise ValidationFailed(field_errors=errors)
    return Page.from_values(values)


async def list_events(
    conn: AsyncConnection, principal: Principal, page: Page
) -> tuple[int, list[EventRead]]:
    """A page of the account's events (oldest first) and how many it has."""
    count, rows = await repo.list_events(
        conn, principal.account_id, limit=page.limit, offset=page.offset
    )
    events = [
        EventRead(
            id=row.id,
            name=row.name,
            linkPrefix=row.link_prefix,
            eventType=row.event_type,
            createdAt=format_time(row.created_at) or "",
        )
        for row in rows
    ]
    return count, events
