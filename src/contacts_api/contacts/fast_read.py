"""The two hot reads on Database.raw_read: GET /v1/contacts/detail and the unfiltered first
pages of GET /v1/contacts. Same statements as manage_repository (built by its functions),
same answers as the Core path (tests/contacts/test_fast_read.py compares them); only the
values are converted here, straight from the driver's types to the wire's.

Measured in process (CPU per call, all threads, 5,000 contacts; loaded 2-core machine):
  SQLite      page of 50: 2,340 -> 240 us   detail: 935 -> 18 us
  PostgreSQL  page of 50: 2,140 -> 400 us   detail: 980 -> 240 us
Of the Core path's page, ~650 us was building the 50 contacts from SQLAlchemy rows (type
processors parse each time into a datetime, format_time writes it back out); here times stay
text (SQLite's own, PostgreSQL's in a UTC session) and are re-cut into the wire's format.
Since then the contacts are built positionally, with their stored tracking passed through
and only the columns they show: GET /v1/contacts?limit=50 under wrk (two workers, SQLite)
went from 4,255-4,331 to 4,930-5,062 req/s, 440 -> 377 us of CPU per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import msgspec
import sqlalchemy as sa

from contacts_api.contacts import manage_repository as repo
from contacts_api.contacts.manage_schemas import ContactDetail, ContactList, EventSummary
from contacts_api.contacts.schemas import ContactRead
from contacts_api.errors import NotFound
from contacts_api.paging import Page
from contacts_api.storage import pg_timestamps
from contacts_api.storage.models import contact_table
from contacts_api.storage.raw_read import RawReader
from contacts_api.timeutil import format_time

CONTACT_NOT_FOUND = "Contact not found"  # manage_service.CONTACT_NOT_FOUND (import cycle)
_ACCOUNT = sa.bindparam("account_id", type_=sa.Integer)
_CONTACT = sa.bindparam("contact_id", type_=sa.Integer)
_LIMIT = sa.bindparam("limit", type_=sa.Integer)
_OFFSET = sa.bindparam("offset", type_=sa.Integer)

DETAIL = repo.contact_detail_query(_ACCOUNT, _CONTACT)
LIVE_COUNT = sa.select(repo.live_count_query(_ACCOUNT))
_pages: dict[tuple[str, bool, bool], sa.Select[Any]] = {}


def _page_statement(order: repo.ContactOrder, first_page: bool) -> sa.Select[Any]:
    key = (order.column, order.descending, first_page)
    statement = _pages.get(key)
    if statement is None:
        page = repo.unfiltered_page_query(_ACCOUNT, order, _LIMIT, _OFFSET, first_page=first_page)
        # Only the columns a listed contact shows, the count last: 4 of the table's 25
        # fewer values for the driver to make objects of (~150 -> ~130 us per page of 50).
        count = list(page.selected_columns)[-1]
        shown = [contact_table.c[name] for name in _FIELD_COLUMNS]
        built: sa.Select[Any] = page.with_only_columns(*shown, count, maintain_column_froms=True)
        statement = _pages[key] = built
    return statement


def _positions(query: sa.Select[Any]) -> dict[str, int]:
    return {str(column.key): i for i, column in enumerate(query.selected_columns)}


_DETAIL_AT = _positions(DETAIL)
# ContactRead's fields in order, by the column each is read from (`createdAt`: created_at).
_FIELD_COLUMNS = tuple(
    re.sub("([A-Z])", r"_\1", field).lower() for field in ContactRead.__struct_fields__
)
assert all(column in contact_table.c for column in _FIELD_COLUMNS), _FIELD_COLUMNS
_raw_json = msgspec.json.Decoder(msgspec.Raw)
_any_json = msgspec.json.Decoder()


def _sqlite_time(value: Any) -> str | None:
    """SQLite stores naive UTC text, `2024-01-15 10:00:00.123456` as SQLAlchemy writes it."""
    if value is None:
        return None
    if len(value) == 26 and value[10] == " ":
        return f"{value[:10]}T{value[11:23]}Z"
    return format_time(datetime.fromisoformat(value).replace(tzinfo=UTC))


def _postgresql_time(value: Any) -> str | None:
    """timestamptz as text in a UTC session (Database.raw_read): `2024-01-15 10:00:00+00`,
    the fraction's trailing zeros dropped (`10:00:00.12+00`)."""
    if value is None:
        return None
    if value.endswith("+00") and value[10] == " ":
        if len(value) == 22:
            return f"{value[:10]}T{value[11:19]}.000Z"
        if value[19] == ".":
            return f"{value[:10]}T{value[11:19]}.{(value[20:-3] + '00')[:3]}Z"
    extreme = pg_timestamps.TEXT_EXTREMES.get(value)
    if extreme is not None:  # stored by an earlier version for the extreme instants
        return format_time(extreme)
    return format_time(datetime.fromisoformat(value))


def _tracking(value: Any) -> Any:
    """The stored JSON object's text as it is (msgspec.Raw: checked, neither decoded into
    objects nor re-encoded; asyncpg hands json over as text too). Anything else stored (by
    another tool) is answered as the Core path answers it: null as an empty object, and
    what is not an object or not JSON fails."""
    if value is None:
        return {}
    if type(value) is not str:
        return dict(value)
    if value[:1] == "{":
        # try/except, not contextlib.suppress: entering the context manager took ~0.5 us a
        # row, four times the decode (1.24 -> 0.26 us a call, a page of 50 ~50 us less).
        try:
            return _raw_json.decode(value)  # the syntax checked (~0.1 us), no objects made
        except msgspec.DecodeError:
            pass
    return dict(_any_json.decode(value) or {})


def _reader(dialect_name: str, at: dict[str, int]) -> Callable[[Sequence[Any]], ContactRead]:
    """A function from one driver row to its ContactRead (service.contact_read's twin).

    Built positionally, the row's values picked in the struct's field order by one
    itemgetter: a page of 50 took ~93 us to build and encode with keywords and the tracking
    decoded, ~41 us so (in process, 50 rows of the benchmark's shape).
    """
    wire_time: Callable[[Any], str | None] = (
        _sqlite_time if dialect_name == "sqlite" else _postgresql_time
    )
    pick = itemgetter(*(at[column] for column in _FIELD_COLUMNS))

    def read(row: Sequence[Any]) -> ContactRead:
        (
            id_, account, user, email, first, last, status, phone, preview, tag, blocked,
            joined, country, zone, ip, blocked_id, referrer, created, updated, deleted,
            tracking,
        ) = pick(row)  # fmt: skip
        return ContactRead(
            id_, account, user, email, first, last, status, phone, preview, tag,
            bool(blocked), wire_time(joined) or "", country, zone, ip, blocked_id, referrer,
            wire_time(created) or "", wire_time(updated) or "",
            None if deleted is None else wire_time(deleted), _tracking(tracking),
        )  # fmt: skip

    return read


_readers: dict[tuple[str, int], Callable[[Sequence[Any]], ContactRead]] = {}


def _row_reader(dialect_name: str, query: sa.Select[Any]) -> Callable[[Sequence[Any]], ContactRead]:
    key = (dialect_name, id(query))
    reader = _readers.get(key)
    if reader is None:
        reader = _readers[key] = _reader(dialect_name, _positions(query))
    return reader


async def list_page(
    reader: RawReader, account_id: int, order: repo.ContactOrder, page: Page
) -> ContactList:
    """An unfiltered page (repo.is_bounded_listing) and the maintained count; on SQLite, the
    page read last time while nothing has been committed since (storage/snapshot_cache.py).
    That one is shared by every request answered with it: never change what this returns."""
    kept = reader.snapshots
    if kept is None:
        return await _read_page(reader, account_id, order, page)
    key = (account_id, order.column, order.descending, page.limit, page.offset)
    version = reader.snapshot_version()
    listing = kept.get(key, version)
    if listing is None:
        listing = await _read_page(reader, account_id, order, page)
        kept.put(key, version, listing)
    return listing


async def _read_page(
    reader: RawReader, account_id: int, order: repo.ContactOrder, page: Page
) -> ContactList:
    query = _page_statement(order, first_page=page.offset == 0)
    params = {"account_id": account_id, "limit": page.limit, "offset": page.offset}
    rows = await reader.fetch(query, params)
    if not rows:  # an empty account, or a page past the end
        count = (await reader.fetch(LIVE_COUNT, {"account_id": account_id}))[0][0]
        return ContactList(int(count), [])
    read = _row_reader(reader.dialect_name, query)
    return ContactList(int(rows[0][-1]), [read(row) for row in rows])


async def contact_detail(reader: RawReader, account_id: int, contact_id: int) -> ContactDetail:
    """The live contact with its event and tag name, or NotFound."""
    rows = await reader.fetch(DETAIL, {"account_id": account_id, "contact_id": contact_id})
    if not rows:
        raise NotFound(CONTACT_NOT_FOUND)
    row, at = rows[0], _DETAIL_AT
    event_id = row[at["event_id"]]
    event = None
    if event_id is not None:
        event = EventSummary(
            event_id, row[at["event_name"]], row[at["event_link_prefix"]], row[at["event_type"]]
        )
    base = _row_reader(reader.dialect_name, DETAIL)(row)
    return ContactDetail(
        **{name: getattr(base, name) for name in base.__struct_fields__},
        secondary_email=row[at["secondary_email"]],
        secondary_phoneNumber=row[at["secondary_phone_number"]],
        event=event,
        tag=row[at["tag_name"]],
    )
