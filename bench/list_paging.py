"""Deep paging of GET /v1/contacts's query on a large account, with and without its indexes.

    .venv/bin/python -m bench.list_paging [DATABASE_URL] [ROWS]

Fills a fresh database with ROWS contacts in one account (plus as many in another), then
times the listing query (count + one page of 20) at the first, middle and last page for
the default order and a few order columns; then drops the listing indexes of migration
0002 and times the same pages again. Prints milliseconds per page and the ratio.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from contacts_api.contacts import manage_repository as repo
from contacts_api.paging import Page
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.models import CONTACT_ORDER_COLUMNS, contact_table

ORDERS = [
    repo.ContactOrder(),  # default: newest first
    repo.ContactOrder("joined_time", descending=False),
    repo.ContactOrder("last_name", descending=False),
    repo.ContactOrder("email", descending=True),
]


def fill(url: str, rows: int) -> None:
    engine = migrate.sync_engine(url)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO account (name, created_at) VALUES ('a', :t), ('b', :t)"),
                     {"t": base})  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO app_user (account_id, email, created_at) "
                "VALUES (1, 'o@a.test', :t), (2, 'o@b.test', :t)"
            ),
            {"t": base},
        )
        batch = []
        for i in range(rows * 2):
            account = 1 + i % 2
            when = base + timedelta(seconds=i)
            batch.append(
                {
                    "account_id": account,
                    "user_id": account,
                    "email": f"user{i:07d}@example.com",
                    "email_key": f"user{i:07d}@example.com",
                    "first_name": f"F{(i * 7919) % 100_000:05d}",
                    "last_name": None if i % 10 == 0 else f"L{(i * 104_729) % 100_000:05d}",
                    "status": "POTENTIAL",
                    "preview_id": f"contact_{i:012d}",
                    "blocked_by_recaptcha": False,
                    "joined_time": base + timedelta(seconds=(i * 31) % rows),
                    "tracking": {},
                    "created_at": when,
                    "updated_at": when,
                }
            )
            if len(batch) == 10_000:
                conn.execute(sa.insert(contact_table), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(contact_table), batch)
    # What autovacuum does soon after a bulk load on PostgreSQL (it sets the visibility map
    # that index-only scans need); plain statistics on SQLite.
    statement = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


async def time_pages(url: str, rows: int) -> dict[tuple[str, int], float]:
    db = Database(url)
    results: dict[tuple[str, int], float] = {}
    last_page = rows // 20 - 1
    try:
        for order in ORDERS:
            for number in (0, last_page // 2, last_page):
                async with db.read() as conn:
                    start = time.perf_counter()
                    for _ in range(3):
                        listing = await repo.list_contacts(
                            conn, 1, repo.ContactFilter(), order, Page(number, 20)
                        )
                    elapsed = (time.perf_counter() - start) / 3
                assert listing.count == rows and len(listing.rows) == 20
                results[(f"{order.column} {'desc' if order.descending else 'asc'}", number)] = (
                    elapsed
                )
    finally:
        await db.dispose()
    return results


def drop_listing_indexes(url: str) -> None:
    engine = migrate.sync_engine(url)
    with engine.begin() as conn:
        for column in (*CONTACT_ORDER_COLUMNS, "event_id", "status"):
            conn.execute(sa.text(f"DROP INDEX ix_contact_live_{column}"))
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
        migrate.upgrade(url)
        started = time.perf_counter()
        fill(url, rows)
        print(f"{rows} contacts per account, 2 accounts ({time.perf_counter() - started:.0f}s)")
        indexed = asyncio.run(time_pages(url, rows))
        drop_listing_indexes(url)
        bare = asyncio.run(time_pages(url, rows))
        print(f"{'order':<18}{'page':>8}{'indexed ms':>12}{'no index ms':>13}{'ratio':>8}")
        for (order, number), seconds in indexed.items():
            without = bare[(order, number)]
            print(
                f"{order:<18}{number:>8}{seconds * 1000:>12.1f}{without * 1000:>13.1f}"
                f"{without / seconds:>8.1f}"
            )


if __name__ == "__main__":
    main()
