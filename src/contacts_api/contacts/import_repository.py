"""The import's own SQL: new contacts inserted a batch at a time from one JSON array, which of
them landed, which emails the account already holds, and the import connection's page cache.
The upsert path the import shares with the API is contacts/bulk_repository.py."""

from __future__ import annotations

from collections.abc import Sequence
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


def _sqlite_insert_sql() -> str:
    tag_at = INSERT_COLUMNS.index("tag_id")
    account_at = INSERT_COLUMNS.index("account_id")
    values = [f"?{n + 1}" for n in range(len(INSERT_COLUMNS))]
    values[tag_at] = (
        f"(SELECT id FROM tag WHERE account_id = ?{account_at + 1} AND name = ?{tag_at + 1})"  # noqa: S608
    )
    return (
        f"INSERT INTO contact ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join(values)})"  # noqa: S608
        f"{ON_LIVE_EMAIL_CONFLICT}"
    )


_SQLITE_INSERT = _sqlite_insert_sql()


def _insert_sql(dialect: Any) -> str:
    if dialect.name == "sqlite":
        return _SQLITE_INSERT
    return postgresql_insert_sql(dialect, tag_by_name=True, returning=False)


def insert_columns() -> list[str]:
    """The columns of a row given to `insert_json_rows`, in order."""
    return list(INSERT_COLUMNS)


async def insert_json_rows(conn: AsyncConnection, rows_json: str) -> int:
    """Insert new contacts given as one JSON array (see above); returns how many landed.

    A row whose email a live contact already holds is skipped (ON CONFLICT on the partial
    unique index, as `repository.insert_contact`); the caller finds out which.
    """
    sql = _insert_sql(conn.dialect)
    if conn.dialect.name != "sqlite":
        return int((await conn.exec_driver_sql(sql, (rows_json,))).rowcount)
    rows = _rows_decoder.decode(rows_json)
    account_at = INSERT_COLUMNS.index("account_id")
    deleted_at = INSERT_COLUMNS.index("deleted_at")
    landed = 0
    # One statement per account (an import has one), so its rowcount is that account's count.
    for account_id in dict.fromkeys(row[account_at] for row in rows):
        mine = [row for row in rows if row[account_at] == account_id]
        if any(row[deleted_at] is not None for row in mine):
            raise ValueError("insert_json_rows inserts live contacts only")
        inserted = int((await conn.exec_driver_sql(sql, mine)).rowcount)  # type: ignore[arg-type]
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
