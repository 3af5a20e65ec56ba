"""The live-contact count (contact_live_count) on the writers' side.

PostgreSQL's triggers count every statement. On SQLite only deletes and soft deletes are
counted by triggers; inserts are counted here, by the code that made them, in the same
transaction (an INSERT trigger slowed every SQLite insert by a third: migration 0006).
Every insert into `contact` goes through contacts/repository.py,
contacts/bulk_repository.py or contacts/import_repository.py, and each calls
`count_inserted` with what landed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

ADD_SQL = (
    "INSERT INTO contact_live_count (account_id, slot, live) VALUES (?, 0, ?)"
    " ON CONFLICT (account_id, slot) DO UPDATE SET live = live + excluded.live"
)

# Counts rebuilt from the rows: the migration's own first count, for `db recount`.
RECOUNT = (
    "DELETE FROM contact_live_count",
    "INSERT INTO contact_live_count (account_id, slot, live)"
    " SELECT account_id, 0, count(*) FROM contact WHERE deleted_at IS NULL"
    " GROUP BY account_id",
)


async def count_inserted(conn: AsyncConnection, account_ids: Iterable[int]) -> None:
    """SQLite: add one live contact per account id given (one per inserted live row)."""
    if conn.dialect.name != "sqlite":
        return
    added = Counter(account_ids)
    if added:
        await conn.exec_driver_sql(ADD_SQL, list(added.items()))  # type: ignore[arg-type]
