"""The export job: every live contact of an account, streamed as CSV or JSON Lines.

The CLI's `export` command and the tests run it; `contacts-api import` reads its files back.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import IO, Literal

import msgspec
import sqlalchemy as sa

from contacts_api.accounts.service import account_id_by_name
from contacts_api.contacts import bulk_output
from contacts_api.contacts import bulk_repository as bulk_repo
from contacts_api.contacts.manage_repository import live_count_query
from contacts_api.storage.engine import Database

EXPORT_PAGE = 1000


async def export_contacts(
    db: Database,
    account_name: str,
    out: IO[str],
    file_format: Literal["csv", "jsonl"],
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write every live contact of the account, page by page (constant memory); returns count.

    `on_progress(written, total)` after each page: `total` is the account's live contacts
    when the export began (O(1): the maintained count), or `written` once beyond it."""
    async with db.read() as conn:
        account_id = await account_id_by_name(conn, account_name)
        # int(): PostgreSQL's sum() of the count's slots is a numeric (a Decimal here).
        total = int((await conn.execute(sa.select(live_count_query(account_id)))).scalar_one())
    # CRLF, as RFC 4180 has it: with "\n" as the line end, csv left a cell holding a bare "\r"
    # unquoted, and reading the file back split that row in two.
    writer = csv.writer(out, lineterminator="\r\n") if file_format == "csv" else None
    if writer is not None:
        writer.writerow(bulk_output.EXPORT_COLUMNS)
    encoder = msgspec.json.Encoder()
    count, after_id = 0, 0
    while True:
        # Keyset pages, each its own short read: no transaction is held open for the export.
        async with db.read() as conn:
            page = await bulk_repo.live_contacts_page(
                conn, account_id, after_id=after_id, limit=EXPORT_PAGE
            )
        if not page:
            if on_progress is not None:
                on_progress(count, count)  # the end, whatever the count said at the start
            return count
        for row in page:
            record = bulk_output.export_record(row)
            if writer is not None:
                writer.writerow(
                    [bulk_output.csv_cell(record[c]) for c in bulk_output.EXPORT_COLUMNS]
                )
            else:
                out.write(encoder.encode(record).decode() + "\n")
        count += len(page)
        after_id = page[-1].id
        if on_progress is not None:
            on_progress(count, max(total, count))
