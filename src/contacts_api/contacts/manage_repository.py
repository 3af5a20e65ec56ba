"""SQL for listing, detail, update and soft delete of contacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.contacts.repository import ContactRow
from contacts_api.paging import Page
from contacts_api.storage.functions import fold_case
from contacts_api.storage.models import (
    contact_live_count_table,
    contact_table,
    event_table,
    tag_table,
)

c = contact_table.c
# Columns that may hold NULL sort it lowest on both dialects (SQLite's own rule), so a
# listing reads the same on SQLite and PostgreSQL; the indexes are built to match.
NULLABLE_ORDER_COLUMNS = {"first_name", "last_name", "email"}
# An unfiltered page ending within this many rows is a short walk of one ordering index
# (~1 ms at the limit), cheap enough to run on the event loop (Database.raw_read).
BOUNDED_PAGE_END = 10_000


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """What a listing matches, besides being a live contact of the account."""

    statuses: tuple[str, ...] = ()
    event_ids: tuple[int, ...] = ()
    user_id: int | None = None
    search: str | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None

    @property
    def is_empty(self) -> bool:
        """No filter: every live contact of the account matches (counted by migration 0005)."""
        return self == NO_FILTER


NO_FILTER = ContactFilter()


@dataclass(frozen=True, slots=True)
class ContactOrder:
    column: str = "created_at"
    descending: bool = True


@dataclass(frozen=True, slots=True)
class ContactListing:
    count: int
    rows: list[ContactRow] = field(default_factory=list)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(account_id: Any, where: ContactFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = [
        c.account_id == account_id,
        c.deleted_at.is_(None),
    ]
    if where.statuses:
        conditions.append(c.status.in_(where.statuses))
    if where.event_ids:
        conditions.append(c.event_id.in_(where.event_ids))
    if where.user_id is not None:
        conditions.append(c.user_id == where.user_id)
    if where.time_from is not None:
        conditions.append(c.joined_time >= where.time_from)
    if where.time_to is not None:
        conditions.append(c.joined_time <= where.time_to)
    if where.search:
        pattern = f"%{_escape_like(where.search)}%"
        columns = (c.first_name, c.last_name, c.email, c.phone_number)
        if where.search.isascii():
            matches = [column.ilike(pattern, escape="\\") for column in columns]
        else:
            # SQLite's lower() and LIKE fold ASCII letters only: "éva" would miss "Éva".
            # A term with other letters is compared with its case folded by Unicode's rules
            # (storage.functions.fold_case), the term by the same function as the column
            # (Python's lower() ends "ΟΔΟΣ" in a final sigma, PostgreSQL's in a plain one).
            # ASCII terms keep SQLite's own lower(), which needs no call into Python per row.
            term = fold_case(sa.literal(pattern, sa.String()))
            matches = [fold_case(column).like(term, escape="\\") for column in columns]
        conditions.append(sa.or_(*matches))
    return conditions


def _order_by(order: ContactOrder) -> list[sa.ColumnElement[Any]]:
    column = c[order.column]
    sort = column.desc() if order.descending else column.asc()
    if order.column in NULLABLE_ORDER_COLUMNS:
        sort = sort.nulls_last() if order.descending else sort.nulls_first()
    tie_break = c.id.desc() if order.descending else c.id.asc()
    return [tie_break] if order.column == "id" else [sort, tie_break]


def live_count_query(account_id: Any) -> sa.ScalarSelect[Any]:
    """The account's number of live contacts, maintained as they are written (migrations
    0005, 0006; contacts/live_count.py): O(1)."""
    live = contact_live_count_table.c
    return (
        sa.select(sa.func.coalesce(sa.func.sum(live.live), sa.literal_column("0")))
        .where(live.account_id == account_id)
        .scalar_subquery()
    )


def _page_query(
    conditions: list[sa.ColumnElement[bool]], order: ContactOrder, limit: Any, offset: Any
) -> sa.Select[Any]:
    """The page's rows. Its ids are picked first from the ordering index alone (a deferred
    join), and only those rows are read: skipping deep into a large account walks index
    entries, not whole contacts."""
    page_ids = (
        sa.select(c.id)
        .where(*conditions)
        .order_by(*_order_by(order))
        .limit(limit)
        .offset(offset)
        .subquery("page_ids")
    )
    return (
        sa.select(contact_table).join(page_ids, page_ids.c.id == c.id).order_by(*_order_by(order))
    )


def unfiltered_page_query(
    account_id: Any, order: ContactOrder, limit: Any, offset: Any, *, first_page: bool = False
) -> sa.Select[Any]:
    """A page of all the account's live contacts, each row with the maintained count as
    `live_count` (one statement: one snapshot even without a transaction).

    The first page reads its rows while walking the index (nothing to skip, so the deferred
    join only adds a materialised id list and a sort: 160 vs 275 us for 50 rows on SQLite).
    """
    conditions = _conditions(account_id, NO_FILTER)
    query = (
        sa.select(contact_table).where(*conditions).order_by(*_order_by(order)).limit(limit)
        if first_page
        else _page_query(conditions, order, limit, offset)
    )
    return query.add_columns(live_count_query(account_id).label("live_count"))


def is_bounded_listing(where: ContactFilter, page: Page) -> bool:
    """Whether the listing's cost is bounded whatever the account's size (no filter to count,
    a page near the start of an ordering index)."""
    return where.is_empty and page.offset + page.limit <= BOUNDED_PAGE_END


async def list_contacts(
    conn: AsyncConnection,
    account_id: int,
    where: ContactFilter,
    order: ContactOrder,
    page: Page,
) -> ContactListing:
    """One page of the matches and the total number of matches.

    Unfiltered, the count is the maintained one and comes with the page in one statement
    (one snapshot even without a transaction); a filtered count is exact, by index scan.
    """
    if where.is_empty:
        query = unfiltered_page_query(
            account_id, order, page.limit, page.offset, first_page=page.offset == 0
        )
        rows = (await conn.execute(query)).all()
        if rows:
            return ContactListing(int(rows[0].live_count), list(rows))
        # An empty account, or a page past the end.
        count = (await conn.execute(sa.select(live_count_query(account_id)))).scalar_one()
        return ContactListing(int(count))
    conditions = _conditions(account_id, where)
    count = (
        await conn.execute(sa.select(sa.func.count()).select_from(contact_table).where(*conditions))
    ).scalar_one()
    if page.offset >= count:
        return ContactListing(int(count))
    query = _page_query(conditions, order, page.limit, page.offset)
    return ContactListing(int(count), list((await conn.execute(query)).all()))


def contact_detail_query(account_id: Any, contact_id: Any) -> sa.Select[Any]:
    """The live contact with its event's summary and its tag's name (outer joins)."""
    return (
        sa.select(
            contact_table,
            event_table.c.name.label("event_name"),
            event_table.c.link_prefix.label("event_link_prefix"),
            event_table.c.event_type.label("event_type"),
            tag_table.c.name.label("tag_name"),
        )
        .outerjoin(event_table, event_table.c.id == c.event_id)
        .outerjoin(tag_table, tag_table.c.id == c.tag_id)
        .where(c.id == contact_id, c.account_id == account_id, c.deleted_at.is_(None))
    )


async def get_contact_detail(
    conn: AsyncConnection, account_id: int, contact_id: int
) -> sa.Row[Any] | None:
    """The live contact with its event's summary and its tag's name (outer joins)."""
    row: sa.Row[Any] | None = (
        await conn.execute(contact_detail_query(account_id, contact_id))
    ).first()
    return row


async def lock_live_contact(
    conn: AsyncConnection, account_id: int, contact_id: int
) -> ContactRow | None:
    """The live contact, locked for update on PostgreSQL (SQLite's write lock is database-wide)."""
    query = sa.select(contact_table).where(
        c.id == contact_id, c.account_id == account_id, c.deleted_at.is_(None)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def email_key_taken(
    conn: AsyncConnection, account_id: int, email_key: str, except_id: int
) -> bool:
    """Whether another live contact of the account holds this email."""
    query = sa.select(c.id).where(
        c.account_id == account_id,
        c.email_key == email_key,
        c.deleted_at.is_(None),
        c.id != except_id,
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def update_contact_unless_email_taken(
    conn: AsyncConnection, contact_id: int, values: dict[str, Any]
) -> ContactRow | None:
    """Apply the update; None when the unique email index refuses it (a concurrent claim).

    The savepoint keeps the surrounding transaction usable after the refusal on PostgreSQL.
    """
    statement = (
        sa.update(contact_table)
        .where(c.id == contact_id)
        .values(**values)
        .returning(*contact_table.c)
    )
    try:
        async with conn.begin_nested():
            return (await conn.execute(statement)).one()
    except IntegrityError:
        return None


async def soft_delete_contact(
    conn: AsyncConnection, account_id: int, contact_id: int, now: datetime
) -> ContactRow | None:
    """Mark the live contact deleted; its email is free again (the unique index is partial)."""
    statement = (
        sa.update(contact_table)
        .where(c.id == contact_id, c.account_id == account_id, c.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .returning(*contact_table.c)
    )
    return (await conn.execute(statement)).first()
