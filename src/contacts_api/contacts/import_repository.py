"""The import's own SQL: new contacts inserted a batch at a time from one JSON array, which of
them landed, which emails the account already holds, and the import connection's page cache.
The upsert path the import shares with the API is contacts/bulk_repository.py."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.contacts.bulk_repository import _one_of
from contacts_api.contacts.json_insert import (
    INSERT_COLUMNS,
    ON_LIVE_EMAIL_CONFLICT,
    postgresql_insert_sql,
)
from contacts_api.contacts.live_count import count_inserted
from contacts_api.storage.models import contact_table

# The import's new contacts, a batch at a time, given as one JSON array (a row = the values
# of INSERT_COLUMNS, the tag's name in place of tag_id, looked up by the statement).
# Measured on 100,000 rows, CPU of the writing process:
# - PostgreSQL: one INSERT ... SELECT over json_array_elements of one parameter, ~0.4 s,
#   against ~2 s for asyncpg's executemany (5,000 executions a batch, each decoded and
#   bound in Python); the server's own work is the same either way.
# - SQLite: executemany of the rows decoded by msgspec, ~3.1 s (of which ~2.3 s SQLite's own
#   inserts, the floor). The same INSERT ... SELECT over json_each took ~4.0 s: SQLite 3.40
#   re-parses a row's JSON for each of its 24 json_extract() calls.
_rows_decoder = msgspec.json.Decoder(list[tuple[Any, ...]])


def _sqlite_insert_sql(columns: tuple[str, ...]) -> str:
    """INSERT of these columns (a subset of INSERT_COLUMNS, in order). The others take NULL:
    no contact column has a database default (tests/test_migrations.py checks it)."""
    values = [f"?{n + 1}" for n in range(len(columns))]
    if "tag_id" in columns:
        tag_at, account_at = columns.index("tag_id"), columns.index("account_id")
        values[tag_at] = (
            f"(SELECT id FROM tag WHERE account_id = ?{account_at + 1} AND name = ?{tag_at + 1})"  # noqa: S608
        )
    return (
        f"INSERT INTO contact ({', '.join(columns)}) VALUES ({', '.join(values)})"  # noqa: S608
        f"{ON_LIVE_EMAIL_CONFLICT}"
    )


_SQLITE_INSERTS: dict[tuple[int, ...], str] = {}


def _sqlite_statement(rows: list[tuple[Any, ...]]) -> tuple[str, list[tuple[Any, ...]]]:
    """The INSERT and its parameters for rows of INSERT_COLUMNS, leaving out the columns that
    are NULL in every row.

    Python's sqlite3 binds None (and bool: the reader sends 0/1) only after a lookup in its
    adapter registry, ~1 us each, in the writer's thread; a CRM export leaves 7 of the 24
    columns empty. Measured on 100,000 rows inserted 5,000 at a time into two databases in
    turn (three runs): the inserts' CPU 2.45-3.16 s -> 2.13-2.47 s, 0.08 s of it this
    function's.
    """
    first = rows[0]
    # A column holding a value in the first row is kept; the others are looked through.
    empty = {n for n, value in enumerate(first) if value is None}
    for n in list(empty):
        if list(map(itemgetter(n), rows)).count(None) != len(rows):
            empty.discard(n)
    if _DELETED_AT not in empty:
        raise ValueError("insert_json_rows inserts live contacts only")
    keep = tuple(n for n in range(len(first)) if n not in empty)
    sql = _SQLITE_INSERTS.get(keep)
    if sql is None:
        if len(_SQLITE_INSERTS) >= 256:  # bounded: a batch can leave out any of 2^k sets
            _SQLITE_INSERTS.clear()
        sql = _SQLITE_INSERTS[keep] = _sqlite_insert_sql(tuple(INSERT_COLUMNS[n] for n in keep))
    if len(keep) == 1:  # itemgetter of one index gives the bare value, not a 1-tuple
        return sql, [(row[keep[0]],) for row in rows]
    return sql, list(map(itemgetter(*keep), rows))


_ACCOUNT_ID = INSERT_COLUMNS.index("account_id")
_DELETED_AT = INSERT_COLUMNS.index("deleted_at")


def insert_columns() -> list[str]:
    """The columns of a row given to `insert_json_rows`, in order."""
    return list(INSERT_COLUMNS)


async def insert_json_rows(conn: AsyncConnection, rows_json: str) -> int:
    """Insert new contacts given as one JSON array (see above); returns how many landed.

    A row whose email a live contact already holds is skipped (ON CONFLICT on the partial
    unique index, as `repository.insert_contact`); the caller finds out which.
    """
    if conn.dialect.name != "sqlite":
        sql = postgresql_insert_sql(conn.dialect, tag_by_name=True, returning=False)
        return int((await conn.exec_driver_sql(sql, (rows_json,))).rowcount)
    rows = _rows_decoder.decode(rows_json)
    landed = 0
    # One statement per account (an import has one), so its rowcount is that account's count.
    for account_id in dict.fromkeys(row[_ACCOUNT_ID] for row in rows):
        mine = [row for row in rows if row[_ACCOUNT_ID] == account_id]
        sql, params = _sqlite_statement(mine)
        inserted = int((await conn.exec_driver_sql(sql, params)).rowcount)  # type: ignore[arg-type]
        await count_inserted(conn, [account_id] * inserted)
        landed += inserted
    return landed


async def set_sqlite_cache(conn: AsyncConnection, kib: int | None) -> None:
    """SQLite: this connection's page cache in KiB (None: SQLite's default)."""
    await conn.exec_driver_sql(f"PRAGMA cache_size = {-int(kib or 2000)}")


async def landed_preview_ids(conn: AsyncConnection, preview_ids: Sequence[str]) -> set[str]:
    """Which of these preview ids exist (to tell which rows of an insert landed)."""
    query = sa.select(contact_table.c.preview_id)
    result = await conn.execute(_one_of(conn, query, contact_table.c.preview_id, preview_ids))
    return set(result.scalars())


async def live_email_keys(conn: AsyncConnection, account_id: int, keys_json: str) -> set[str]:
    """Which of these email keys (a JSON array) a live contact of the account holds.

    One parameter walked in the database, each key an index probe of
    uq_contact_account_email_key: binding 5,000 keys one by one through SQLAlchemy cost
    ~8 ms of Python per batch.
    """
    if conn.dialect.name == "sqlite":
        sql = (
            "SELECT email_key FROM contact WHERE account_id = ? AND deleted_at IS NULL"
            " AND email_key IN (SELECT value FROM json_each(?))"
        )
    else:
        sql = (
            "SELECT email_key FROM contact WHERE account_id = $1 AND deleted_at IS NULL"
            " AND email_key IN (SELECT json_array_elements_text(CAST($2 AS JSON)))"
        )
    result = await conn.exec_driver_sql(sql, (account_id, keys_json))
    return {row[0] for row in result.all()}
