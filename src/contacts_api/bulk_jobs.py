"""The import and export jobs: the boundary of the bulk path, one transaction per batch.

The CLI's `import`/`export` commands, the tests and the benchmark all run these functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

from contacts_api.accounts import repository as accounts_repo
from contacts_api.accounts.service import account_id_by_name
from contacts_api.contacts import bulk_files
from contacts_api.contacts import bulk_repository as bulk_repo
from contacts_api.contacts.bulk import BulkItem, BulkUpserter, ChangeRecorder
from contacts_api.errors import UserError, ValidationFailed
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow

BATCH_SIZE = 5000
Sources = dict[int, bulk_files.SourceRow]
EXPORT_PAGE = 1000


@dataclass
class ImportSummary:
    """Rows by outcome; `unchanged` rows matched a contact that already held their values."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    report: Path | None = None

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed

    def line(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, failed {self.failed}, "
            f"unchanged {self.unchanged}"
        )


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read (the progress bar's position)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.consumed += count or 0
        return int(count or 0)


def _open_source(path: Path) -> tuple[IO[bytes], bulk_files.FileFormat, str]:
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        sample = raw.read(bulk_files.SAMPLE_BYTES)
        raw.seek(0)
        file_format, delimiter = bulk_files.detect_format(sample)
    except (OSError, UserError) as exc:
        raw.close()
        if isinstance(exc, UserError):
            raise
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    return raw, file_format, delimiter


def webhook_recorder() -> ChangeRecorder:
    """Outbox events for each created/changed contact, in the batch's transaction."""
    from contacts_api.webhooks.outbox import record_contact_changes

    return record_contact_changes


def _batches(rows: Iterator[bulk_files.SourceRow], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(rows, size)):
        yield batch


async def import_file(
    db: Database,
    path: Path,
    account_name: str,
    *,
    duplicate_email: Any = "upsert",
    emit_webhooks: bool = False,
    batch_size: int = BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import a CSV or JSON Lines file into the account; one committed transaction per batch."""
    async with db.transaction() as conn:
        account_id = await account_id_by_name(conn, account_name)
        user_id = await accounts_repo.find_user_id(conn, account_id, None)
    assert user_id is not None
    raw, file_format, delimiter = _open_source(path)
    counter = _CountingReader(raw)
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
    report = bulk_files.ErrorReport(path.with_name(path.name + ".errors.csv"))
    upserter = BulkUpserter(
        account_id,
        user_id,
        duplicate_email=duplicate_email,
        record_change=webhook_recorder() if emit_webhooks else None,
        match_phone_without_email=True,
        want_ids=False,
    )
    summary = ImportSummary()
    analyzed_at = [0]  # contacts created when the planner's statistics were last refreshed

    async def apply(
        items: list[BulkItem], failures: list[tuple[int, str, Exception]], sources: Sources
    ) -> None:
        async with db.transaction() as conn:
            results = await upserter.upsert(conn, items, utcnow())
        for result in results:
            if result.error is not None:
                failures.append((result.index, sources[result.index].original, result.error))
            else:
                setattr(summary, result.outcome, getattr(summary, result.outcome) + 1)
        for row, original, error in sorted(failures, key=lambda f: f[0]):
            report.add(row, original, error)
        summary.failed = report.count
        if summary.created >= 2 * analyzed_at[0] + batch_size:  # after 1, 3, 7, 15... batches
            analyzed_at[0] = summary.created
            async with db.transaction() as conn:
                await bulk_repo.refresh_statistics(conn)

    writing: asyncio.Task[None] | None = None
    try:
        repeated: set[str] = set()
        if duplicate_email != "allow":
            repeated = _repeated_keys(path, file_format, delimiter)
        # Rows of a contact that appears more than once wait for the end (see repeated_keys).
        deferred: list[tuple[str, BulkItem]] = []
        deferred_sources: Sources = {}
        rows = bulk_files.read_rows(text, file_format, delimiter)
        # A pipeline: while one batch is written (SQLite and the drivers work outside the GIL),
        # the next one is read and validated; batches still commit one after the other.
        while True:
            items: list[BulkItem] = []
            failures: list[tuple[int, str, Exception]] = []
            sources: Sources = {}
            read = 0
            for chunk in _batches(rows, min(batch_size, 250)):
                read += len(chunk)
                for source in chunk:
                    item = bulk_files.to_item(source)
                    if isinstance(item, ValidationFailed):
                        failures.append((source.row, source.original, item))
                        continue
                    key = bulk_files.dedupe_key(item.data.email, item.data.phoneNumber)
                    if key is not None and key in repeated:
                        deferred.append((key, item))
                        deferred_sources[source.row] = source
                    else:
                        items.append(item)
                        sources[source.row] = source
                await asyncio.sleep(0)  # let the batch being written move on
                if read >= batch_size:
                    break
            if writing is not None:
                await writing
                if on_progress is not None:
                    on_progress(counter.consumed, summary.rows)
            if not read:
                break
            writing = asyncio.create_task(apply(items, failures, sources))
        deferred.sort(key=lambda pair: pair[0])  # stable: file order within each contact
        for chunk in _whole_groups(deferred, batch_size):
            await apply(chunk, [], deferred_sources)
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read {path}: not UTF-8 text ({exc.reason})") from None
    finally:
        if writing is not None and not writing.done():
            writing.cancel()  # its transaction rolls back; committed batches stay
            with contextlib.suppress(asyncio.CancelledError):
                await writing
        report.close()
        text.close()
    if on_progress is not None:
        on_progress(counter.consumed, summary.rows)
    summary.report = report.path if report.count else None
    return summary


def _repeated_keys(path: Path, file_format: bulk_files.FileFormat, delimiter: str) -> set[str]:
    with open(path, encoding="utf-8-sig", newline="") as scan:
        return bulk_files.repeated_keys(scan, file_format, delimiter)


def _whole_groups(pairs: list[tuple[str, BulkItem]], size: int) -> Iterator[list[BulkItem]]:
    """Batches of about `size` items that never split one contact's rows."""
    chunk: list[BulkItem] = []
    for n, (key, item) in enumerate(pairs):
        chunk.append(item)
        if len(chunk) >= size and (n + 1 == len(pairs) or pairs[n + 1][0] != key):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def export_contacts(
    db: Database, account_name: str, out: IO[str], file_format: Literal["csv", "jsonl"]
) -> int:
    """Write every live contact of the account, page by page (constant memory); returns count."""
    async with db.read() as conn:
        account_id = await account_id_by_name(conn, account_name)
    writer = csv.writer(out, lineterminator="\n") if file_format == "csv" else None
    if writer is not None:
        writer.writerow(bulk_files.EXPORT_COLUMNS)
    encoder = msgspec.json.Encoder()
    count, after_id = 0, 0
    while True:
        # Keyset pages, each its own short read: no transaction is held open for the export.
        async with db.read() as conn:
            page = await bulk_repo.live_contacts_page(
                conn, account_id, after_id=after_id, limit=EXPORT_PAGE
            )
        if not page:
            return count
        for row in page:
            record = bulk_files.export_record(row)
            if writer is not None:
                writer.writerow([bulk_files.csv_cell(record[c]) for c in bulk_files.EXPORT_COLUMNS])
            else:
                out.write(encoder.encode(record).decode() + "\n")
        count += len(page)
        after_id = page[-1].id
