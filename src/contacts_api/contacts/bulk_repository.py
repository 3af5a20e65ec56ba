"""Batched SQL for bulk upserts and exports: one statement per batch, never one per row."""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.contacts.json_insert import INSERT_COLUMNS, postgresql_insert_sql
from contacts_api.contacts.live_count import count_inserted
from contacts_api.contacts.repository import _LIVE_EMAIL_WHERE, ContactRow, _insert_for
from contacts_api.storage.models import contact_table, tag_table

# Columns an upsert may change on an existing contact (never ids, owner or creation time).
MUTABLE_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "status",
    "phone_number",
    "secondary_email",
    "secondary_phone_number",
    "tag_id",
    "event_id",
    "joined_time",
    "country",
    "time_zone",
    "ip_address",
    "referrer_url",
    "tracking",
    "updated_at",
)


def _one_of(conn: AsyncConnection, query: Any, column: Any, values: Collection[Any]) -> Any:
    """`query` restricted to rows whose `column` is one of `values`, so the index is used.

    PostgreSQL: a join on unnest() of one array parameter. `IN ($1 ... $5000)` there made the
    planner scan the account's rows through the index on account_id alone, comparing each with
    every parameter (no hashing for a non-constant list): 100,000 rows imported in 187 s
    instead of ~10 s. SQLite turns IN (...) into index lookups by itself.
    """
    if conn.dialect.name == "sqlite":
        return query.where(column.in_(list(values)))
    array = postgresql.ARRAY(sa.String if column.type.python_type is str else sa.Integer)
    wanted = sa.func.unnest(sa.cast(sa.bindparam(None, list(values), type_=array), array))
    keys = wanted.table_valued("value").render_derived(name="wanted")
    return query.join(keys, column == keys.c.value)


async def tag_ids_for(
    conn: AsyncConnection, account_id: int, names: Collection[str], now: datetime
) -> dict[str, int]:
    """The account's tags of exactly these names, the missing ones created (race-free)."""
    if not names:
        return {}
    await conn.execute(
        _insert_for(conn)(tag_table).on_conflict_do_nothing(index_elements=["account_id", "name"]),
        [{"account_id": account_id, "name": name, "created_at": now} for name in names],
    )
    result = await conn.execute(
        sa.select(tag_table.c.name, tag_table.c.id).where(
            tag_table.c.account_id == account_id, tag_table.c.name.in_(list(names))
        )
    )
    return {name: int(tag_id) for name, tag_id in result.all()}


# Built once per dialect (a group-committed batch of creates runs this every time; building
# it cost more than running it): the account's live contacts holding one of the email keys.
_LIVE_BY_EMAIL_KEYS: dict[str, Any] = {}


def _live_by_email_keys_query(conn: AsyncConnection) -> Any:
    query = _LIVE_BY_EMAIL_KEYS.get(conn.dialect.name)
    if query is None:
        query = sa.select(contact_table).where(
            contact_table.c.account_id == sa.bindparam("account_id"),
            contact_table.c.email_key.is_not(None),
            contact_table.c.deleted_at.is_(None),
        )
        if conn.dialect.name == "postgresql":
            array = postgresql.ARRAY(sa.String)
            keys = sa.func.unnest(sa.cast(sa.bindparam("email_keys", type_=array), array))
            wanted = keys.table_valued("value").render_derived(name="wanted")
            query = query.join(wanted, contact_table.c.email_key == wanted.c.value)
            # Rows are locked as the sort hands them out: every writer locks in one order, so
            # two batches holding the same known emails in opposite orders cannot deadlock.
            query = query.order_by(contact_table.c.email_key).with_for_update(of=contact_table)
        else:
            query = query.where(
                contact_table.c.email_key.in_(sa.bindparam("email_keys", expanding=True))
            )
        _LIVE_BY_EMAIL_KEYS[conn.dialect.name] = query
    return query


async def find_live_by_email_keys(
    conn: AsyncConnection, account_id: int, email_keys: Collection[str]
) -> dict[str, ContactRow]:
    """The account's live contacts holding these email keys, locked for update on PostgreSQL
    (see `_one_of` for why PostgreSQL gets an array join rather than IN)."""
    if not email_keys:
        return {}
    params = {"account_id": account_id, "email_keys": list(email_keys)}
    result = await conn.execute(_live_by_email_keys_query(conn), params)
    return {row.email_key: row for row in result.all()}


async def find_live_without_email_by_phone(
    conn: AsyncConnection, account_id: int, phone_numbers: Collection[str]
) -> dict[str, ContactRow]:
    """The account's live contacts without email, by phone number (the oldest one wins)."""
    if not phone_numbers:
        return {}
    query = sa.select(contact_table).where(
        contact_table.c.account_id == account_id,
        contact_table.c.email.is_(None),
        contact_table.c.deleted_at.is_(None),
    )
    query = _one_of(conn, query, contact_table.c.phone_number, phone_numbers)
    query = query.order_by(contact_table.c.id.desc())
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=contact_table)
    return {row.phone_number: row for row in (await conn.execute(query)).all()}


def _driver_insert(dialect: Any) -> tuple[str, list[tuple[str, Any]]]:
    """The contact INSERT ... ON CONFLICT DO NOTHING compiled once for the dialect, with each
    positional parameter's column and bind processor."""
    cached = _DRIVER_INSERTS.get(dialect.name)
    if cached is None:
        insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
        statement = insert(contact_table).on_conflict_do_nothing(
            index_elements=["account_id", "email_key"], index_where=_LIVE_EMAIL_WHERE
        )
        compiled = statement.compile(dialect=dialect, column_keys=list(INSERT_COLUMNS))
        assert compiled.positiontup is not None
        processors = dict(compiled._bind_processors)
        # JSON through msgspec: 5x faster than the stdlib encoder SQLAlchemy uses, same values.
        processors["tracking"] = _encode_json
        cached = (
            compiled.string,
            [(name, processors.get(name)) for name in compiled.positiontup],
        )
        _DRIVER_INSERTS[dialect.name] = cached
    return cached


_json = msgspec.json.Encoder()


def _encode_json(value: Any) -> str:
    return _json.encode(value).decode()


_DRIVER_INSERTS: dict[str, tuple[str, list[tuple[str, Any]]]] = {}


async def insert_contacts(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], *, want_ids: bool
) -> dict[str, int | None]:
    """Insert many contacts; returns preview_id -> id (None unless `want_ids`) of those inserted.

    A row whose email a live contact of the account already holds (a concurrent create that
    committed after our lookup) is skipped by ON CONFLICT on the partial unique index, exactly
    as `repository.insert_contact` does; the caller sees it missing from the result.
    """
    if not rows:
        return {}
    if not want_ids:
        return await _insert_without_ids(conn, rows)
    if conn.dialect.name == "sqlite":
        # SQLite cannot RETURNING from an executemany, and Core's multi-row VALUES ... RETURNING
        # cost ~44 us a row inside SQLite plus Core's per-row processing; the driver's
        # executemany and one indexed lookup of the new ids cost ~20 us a row (measured on
        # batches of 32 group-committed creates).
        last_ids: list[int] = []
        landed = await _insert_without_ids(conn, rows, last_ids)
        if last_ids and len(landed) == len(rows) and last_ids[0] < 2**62:
            # Every row landed: SQLite gave each the largest rowid + 1 (documented, until the
            # rowid nears 2**63), so in one write-locked transaction the ids are consecutive,
            # in input order. The lookup by preview_id below (Core building an IN of every
            # id) cost ~14 % of a SQLite batch's CPU.
            first = last_ids[0] - len(rows) + 1
            return {row["preview_id"]: first + n for n, row in enumerate(rows)}
        query = sa.select(contact_table.c.preview_id, contact_table.c.id)
        found = await conn.execute(_one_of(conn, query, contact_table.c.preview_id, landed))
        ids = {preview_id: int(contact_id) for preview_id, contact_id in found.all()}
        # In input order, as RETURNING would give them (webhook events follow this order).
        return {
            row["preview_id"]: ids[row["preview_id"]] for row in rows if row["preview_id"] in ids
        }
    # PostgreSQL: one JSON parameter (contacts/json_insert.py). Through Core's multi-row
    # VALUES ... RETURNING (SQLAlchemy processing every value, asyncpg binding ~20 a row, a
    # new statement text for each batch size) the insert was ~15 % of a loaded worker's
    # CPU. Measured under wrk, 4 runs each, alternated: worker CPU per create ~580 -> ~430 us,
    # creates ~2,300 -> ~3,000 req/s; PostgreSQL's own CPU per create unchanged.
    sql = postgresql_insert_sql(conn.dialect, tag_by_name=False, returning=True)
    # `tracking` as its JSON text: the array is cast to JSONB, which would reorder an object's
    # keys (shortest first); as a string it comes out of `->>` exactly as written.
    tracking_at = INSERT_COLUMNS.index("tracking")
    # Inserted in email order, for the same reason as the lookup's lock order: two batches
    # inserting the same new emails in opposite orders would each wait for the other's.
    ordered = sorted(rows, key=lambda row: row.get("email_key") or "")
    values = [[row.get(column) for column in INSERT_COLUMNS] for row in ordered]
    for value in values:
        if value[tracking_at] is not None:
            value[tracking_at] = _encode_json(value[tracking_at])
    rows_json = _json.encode(values)
    result = await conn.exec_driver_sql(sql, (rows_json.decode(),))
    returned: Sequence[Any] = result.all()
    ids = {preview_id: int(contact_id) for preview_id, contact_id in returned}
    # In input order (webhook events follow it).
    return {row["preview_id"]: ids[row["preview_id"]] for row in rows if row["preview_id"] in ids}


async def _insert_without_ids(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], last_id: list[int] | None = None
) -> dict[str, int | None]:
    """The driver's own executemany with pre-bound values: the import's general path (rows
    that are not simply new: `import_repository` inserts those) and SQLite's create batches.

    Measured on 20,000 rows into SQLite: 0.65 s through Core with RETURNING against 0.15 s
    here (SQLAlchemy's per-row parameter processing and result rows dominate); on PostgreSQL
    (asyncpg) about 10,000 against 6,000 rows/s for the whole import, even though asyncpg
    cannot count an executemany's rows and one more SELECT per batch tells which landed.
    With `last_id` (SQLite), the id SQLite gave the last row inserted is appended to it.
    """
    sql, binds = _driver_insert(conn.dialect)
    pick = operator.itemgetter(*(name for name, _ in binds))
    processed = [(n, process) for n, (_, process) in enumerate(binds) if process is not None]
    blank = dict.fromkeys(INSERT_COLUMNS)
    # Times repeat within a batch (created_at, updated_at, often joined_time): convert each
    # distinct value once.
    memo: dict[Any, Any] = {}
    params = []
    for row in rows:
        values = list(pick({**blank, **row}))
        for n, process in processed:
            value = values[n]
            if value is None:
                continue
            if isinstance(value, datetime):
                key = (n, value)
                if key not in memo:
                    memo[key] = process(value)
                values[n] = memo[key]
            else:
                values[n] = process(value)
        params.append(tuple(values))
    result = await conn.exec_driver_sql(sql, params)  # type: ignore[arg-type]
    if last_id is not None and conn.dialect.name == "sqlite":
        # The id of the last row inserted, asked before count_inserted's upsert (an insert
        # too). SQLite only: executemany leaves the cursor's lastrowid unset.
        last = await conn.exec_driver_sql("SELECT last_insert_rowid()")
        last_id.append(int(last.scalar_one()))
    landed: dict[str, int | None]
    if result.rowcount == len(rows):
        landed = {row["preview_id"]: None for row in rows}
    else:
        # Some rows lost to a concurrent create (or the driver cannot count): ask which landed.
        query = sa.select(contact_table.c.preview_id)
        found = await conn.execute(
            _one_of(conn, query, contact_table.c.preview_id, [row["preview_id"] for row in rows])
        )
        landed = {preview_id: None for preview_id in found.scalars()}
    await count_inserted(
        conn,
        (
            row["account_id"]
            for row in rows
            if row["preview_id"] in landed and row.get("deleted_at") is None
        ),
    )
    return landed


async def update_contacts(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write MUTABLE_COLUMNS of many contacts, each row a dict with `id` and those columns."""
    if not rows:
        return
    statement = (
        sa.update(contact_table)
        .where(contact_table.c.id == sa.bindparam("contact_id"))
        .values({column: sa.bindparam(f"new_{column}") for column in MUTABLE_COLUMNS})
    )
    await conn.execute(
        statement,
        [
            {"contact_id": row["id"], **{f"new_{c}": row[c] for c in MUTABLE_COLUMNS}}
            for row in rows
        ],
    )


async def refresh_statistics(conn: AsyncConnection) -> None:
    """Let PostgreSQL's planner know the contact table grew (a no-op on SQLite).

    A bulk import can grow the table by 100,000 rows faster than autovacuum's next ANALYZE;
    until then the planner believes the table nearly empty and looks contacts up by account
    alone, filtering every row of it: 14 s per batch at 100,000 contacts instead of ~10 ms.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("ANALYZE contact"))


async def contacts_by_ids(conn: AsyncConnection, contact_ids: Collection[int]) -> list[ContactRow]:
    """Contacts by id (the stored rows a batch changed, for its webhook events)."""
    if not contact_ids:
        return []
    query = _one_of(conn, sa.select(contact_table), contact_table.c.id, contact_ids)
    return list((await conn.execute(query)).all())


async def live_contacts_page(
    conn: AsyncConnection, account_id: int, *, after_id: int, limit: int
) -> list[sa.Row[Any]]:
    """One keyset page of the account's live contacts (id > after_id), with the tag's name."""
    query = (
        sa.select(contact_table, tag_table.c.name.label("tag_name"))
        .outerjoin(tag_table, tag_table.c.id == contact_table.c.tag_id)
        .where(
            contact_table.c.account_id == account_id,
            contact_table.c.deleted_at.is_(None),
            contact_table.c.id > after_id,
        )
        .order_by(contact_table.c.id)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())
