"""The import job: the boundary of the bulk path, one transaction per batch.

The CLI's `import` command, the tests and the benchmark all run `import_file` (the export is
bulk_export.py).
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import msgspec
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts import repository as accounts_repo
from contacts_api.accounts.service import account_id_by_name
from contacts_api.contacts import (
    bulk_files,
    bulk_output,
    bulk_rows,
    import_pipe,
    import_reader,
    service,
)
from contacts_api.contacts import bulk_repository as bulk_repo
from contacts_api.contacts import import_repository as import_repo
from contacts_api.contacts.bulk import BulkItem, BulkUpserter, ChangeRecorder, ItemResult
from contacts_api.contacts.schemas import ContactCreate, ContactImport
from contacts_api.errors import UserError, ValidationFailed
from contacts_api.events.repository import find_event_id
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow

BATCH_SIZE = 5000
Record = tuple[int, str, str, str]  # a record of the error report (bulk_output.render)
# SQLite page cache of the import's connection (default 2 MiB). The random-order indexes
# (email, names, preview_id...) outgrow 2 MiB within 100,000 contacts. Measured on 100,000
# rows, alternating runs: the writer's CPU 3.05-3.21 s -> 2.61-2.68 s, its peak memory
# +15 MB (~140 MB; with the reader's ~41 MB the import stays under 200 MB); 24 MiB gained
# no more and cost 30 MB. Set back to the default when the import ends.
IMPORT_SQLITE_CACHE_KIB = 16 * 1024


@dataclass
class ImportSummary:
    """Rows by outcome; `unchanged` rows matched a contact that already held their values."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    report: Path | None = None
    report_moved: str | None = None  # why the report is in the temporary folder (ErrorReport)
    report_in_the_way: Path | None = None  # an earlier report beside FILE, not removable
    reader_peak_mb: float | None = None  # the reader process's peak memory, when known

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.failed

    def line(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, failed {self.failed}, "
            f"unchanged {self.unchanged}"
        )


def _open_source(path: Path) -> tuple[IO[bytes], bulk_files.FileFormat, str]:
    try:
        # A named pipe would block this open until a writer came (Ctrl-C unheard meanwhile),
        # and the import reads its file twice: a regular file only.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UserError(f"cannot read {path}: not a regular file")
        str(path).encode()  # the name goes to the reader process as UTF-8 text
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeEncodeError:
        raise UserError(f"cannot read {path!r}: its name is not UTF-8; rename it") from None
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


async def import_file(
    db: Database,
    path: Path,
    account_name: str,
    *,
    duplicate_email: Any = "upsert",
    emit_webhooks: bool = False,
    batch_size: int = BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
    summary: ImportSummary | None = None,
) -> ImportSummary:
    """Import a CSV or JSON Lines file into the account; one committed transaction per batch.

    A reader process (`contacts.import_reader`) parses, validates and shapes the rows while
    this one writes: batch N+1 is read while batch N commits. Batches commit in file order.
    """
    async with db.transaction() as conn:
        account_id = await account_id_by_name(conn, account_name)
        user_id = await accounts_repo.find_user_id(conn, account_id, None)
    assert user_id is not None
    raw, file_format, delimiter = _open_source(path)
    # The report quotes rejected rows: readable by no one who may not read the file (the
    # umask may take more away). It was always the umask's 0644, for a 0600 file too.
    source_mode = stat.S_IMODE(os.fstat(raw.fileno()).st_mode)
    raw.close()
    match_phone = duplicate_email == "upsert"
    options = import_reader.Options(
        path=str(path),
        file_format=file_format,
        delimiter=delimiter,
        dialect=db.engine.dialect.name,
        columns=import_repo.insert_columns(),
        account_id=account_id,
        user_id=user_id,
        duplicate_email=duplicate_email,
        match_phone=match_phone,
        batch_size=batch_size,
        fast=not emit_webhooks,  # webhook events need each new contact's id
        parent_pid=os.getpid(),
    )
    upserter = BulkUpserter(
        account_id,
        user_id,
        duplicate_email=duplicate_email,
        record_change=webhook_recorder() if emit_webhooks else None,
        match_phone_without_email=match_phone,
        want_ids=False,
    )
    # The caller's own, when given: where an interrupted import stood (Ctrl-C cancels this).
    summary = ImportSummary() if summary is None else summary
    consumed = 0
    # Made here, just before the `try` whose `finally` closes it: a report in the temporary
    # folder is made up front (ErrorReport), and one never written is removed there.
    report = bulk_output.ErrorReport(path.with_name(path.name + ".errors.csv"), source_mode, path)
    writer = _FastWriter(account_id, options, delimiter)
    apply = _BatchApplier(db, writer, upserter, summary, report, batch_size)
    # Measured on 100,000 rows: the collector's passes, triggered by the batches' many new
    # containers and walking every live object (the app's modules included), took ~1 of the
    # writer's 3.6 CPU seconds. During the import, objects alive now are set aside and the
    # young generations are collected once per batch instead.
    collecting = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        async with import_pipe.reader_process(options) as messages:
            while True:
                message = await messages.get()
                if isinstance(message, import_reader.ReaderError):
                    raise UserError(message.message)
                if isinstance(message, import_reader.Done):
                    consumed, summary.reader_peak_mb = message.consumed, message.peak_mb
                    break
                if isinstance(message, import_reader.Batch):
                    consumed = message.consumed
                    await apply(message, message.slow)
                else:
                    await apply(None, message.items)
                gc.collect(1)  # the batch's garbage cycles, if any; a few ms
                if on_progress is not None:
                    on_progress(consumed, summary.rows)
    finally:
        # Also when interrupted: the rows of every committed batch, as each commit returned.
        if on_progress is not None:
            on_progress(consumed, summary.rows)
        summary.report = report.path if report.count else None
        summary.report_moved, summary.report_in_the_way = report.moved, report.in_the_way
        gc.unfreeze()
        if collecting:
            gc.enable()
        report.close()
        if db.is_sqlite:  # best effort: never hide why the import stopped
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                async with db.engine.connect() as conn:
                    await import_repo.set_sqlite_cache(conn, None)
    return summary


class _BatchApplier:
    """Commits each batch the reader sends, in a transaction of its own, and counts what
    became of its rows in the summary and the error report."""

    def __init__(
        self,
        db: Database,
        writer: _FastWriter,
        upserter: BulkUpserter,
        summary: ImportSummary,
        report: bulk_output.ErrorReport,
        batch_size: int,
    ) -> None:
        self.db, self.writer, self.upserter = db, writer, upserter
        self.summary, self.report, self.batch_size = summary, report, batch_size
        self.analyzed_at = 0  # contacts created when the planner's statistics were refreshed

    async def __call__(
        self, batch: import_reader.Batch | None, slow: list[import_reader.Item]
    ) -> None:
        records = list(batch.failures) if batch is not None else []
        raws = {item.row: item.raw for item in slow}
        runs = 0

        async def write(conn: AsyncConnection) -> tuple[int, list[Record], list[ItemResult]]:
            """The batch's transaction: run again whole when PostgreSQL picks it as a
            deadlock's victim (a concurrent create or bulk request holding rows it needs,
            and needing rows it holds), so the import goes on instead of stopping."""
            nonlocal runs
            runs += 1
            if runs > 1:  # tags the rolled-back run made went with it
                self.writer.forget_tags()
                self.upserter.forget_tags()
            return await self._write(conn, batch, slow, raws)

        created, failed, results = await self.db.transaction_retrying(write, "import batch")
        summary = self.summary
        summary.created += created
        records.extend(failed)
        for result in results:
            if result.error is not None:
                original = self.writer.original(raws[result.index])
                records.append(bulk_output.render(result.index, original, result.error))
            else:
                setattr(summary, result.outcome, getattr(summary, result.outcome) + 1)
        for record in sorted(records, key=lambda r: r[0]):
            self.report.add_record(record)
        summary.failed = self.report.count
        # After 1, 3, 7, 15... batches.
        if summary.created >= 2 * self.analyzed_at + self.batch_size:
            self.analyzed_at = summary.created
            async with self.db.transaction() as conn:
                await bulk_repo.refresh_statistics(conn)

    async def _write(
        self,
        conn: AsyncConnection,
        batch: import_reader.Batch | None,
        slow: list[import_reader.Item],
        raws: dict[int, str | list[str]],
    ) -> tuple[int, list[Record], list[ItemResult]]:
        if self.db.is_sqlite:
            await import_repo.set_sqlite_cache(conn, IMPORT_SQLITE_CACHE_KIB)
        now = utcnow()
        items = [self.writer.bulk_item(item) for item in slow]
        created, failed = 0, list[Record]()
        if batch is not None and batch.fast:
            created, moved, failed = await self.writer.write(conn, batch, now)
            for item in moved:
                items.append(self.writer.bulk_item(item))
                raws[item.row] = item.raw
        results = await self.upserter.upsert(conn, items, now) if items else []
        return created, failed, results


_json = msgspec.json.Encoder()


class _FastWriter:
    """Inserts a batch's new contacts with one statement; rows whose contact exists go back
    to the general path (`BulkUpserter`), which applies the update rules."""

    def __init__(self, account_id: int, options: import_reader.Options, delimiter: str) -> None:
        self.account_id = account_id
        self.delimiter = delimiter
        self.email_key_at = options.columns.index("email_key")
        self.tag_at = options.columns.index("tag_id")
        self.event_at = options.columns.index("event_id")
        self.preview_at = options.columns.index("preview_id")
        self._tags_made: set[str] = set()
        self._events: dict[tuple[Any, ...], tuple[str, int | None]] = {}
        self._rows = msgspec.json.Decoder(list[list[Any]])
        self._items = msgspec.msgpack.Decoder(list[import_reader.Item])

    def forget_tags(self) -> None:
        """Made tags are no longer known to exist (their transaction rolled back)."""
        self._tags_made.clear()

    def bulk_item(self, item: import_reader.Item) -> BulkItem:
        return BulkItem(item.row, ContactImport(**item.data), item.tracking)

    def original(self, raw: str | list[str]) -> str:
        return bulk_rows.original_text(raw, self.delimiter)

    async def write(
        self, conn: AsyncConnection, batch: import_reader.Batch, now: datetime
    ) -> tuple[int, list[import_reader.Item], list[tuple[int, str, str, str]]]:
        """Insert the batch's new contacts: (created, rows for the general path, failures)."""
        rows: list[list[Any]] | None = None
        items: list[import_reader.Item] | None = None
        existing = set()
        if batch.keys != "[]":
            existing = await import_repo.live_email_keys(conn, self.account_id, batch.keys)
        failed: list[tuple[int, str, str, str]] = []
        moved: list[int] = []
        kept: list[int] | range = range(batch.count)
        rows_json, tag_names = batch.fast, batch.tag_names
        if existing or batch.events is not None:
            # Some rows cannot go in as they are: sort them out, and set the events' ids.
            rows, items = self._rows.decode(batch.fast), self._items.decode(batch.data)
            kept = []
            for n, row in enumerate(rows):
                if row[self.email_key_at] in existing:
                    moved.append(n)
                    continue
                selector = batch.events[n] if batch.events is not None else None
                if selector is not None:
                    # Events before tags, as in a single create: a row whose event is
                    # unknown fails without creating its tag.
                    wire, event_id = await self._event_id(conn, selector)
                    if event_id is None:
                        error = ValidationFailed(field_errors={wire: [service.EVENT_NOT_FOUND]})
                        original = self.original(items[n].raw)
                        failed.append(bulk_output.render(items[n].row, original, error))
                        continue
                    row[self.event_at] = event_id
                kept.append(n)
            rows_json = _json.encode([rows[n] for n in kept]).decode()
            tag_names = sorted({rows[n][self.tag_at] for n in kept if rows[n][self.tag_at]})
        missing = set(tag_names) - self._tags_made
        if missing:  # the insert looks tags up by name
            await bulk_repo.tag_ids_for(conn, self.account_id, missing, now)
            self._tags_made |= missing
        created = await import_repo.insert_json_rows(conn, rows_json) if kept else 0
        if created < len(kept):  # a concurrent create took some emails: update those instead
            rows = rows or self._rows.decode(batch.fast)
            previews = [rows[n][self.preview_at] for n in kept]
            landed = await import_repo.landed_preview_ids(conn, previews)
            moved.extend(n for n in kept if rows[n][self.preview_at] not in landed)
        if not moved:
            return created, [], failed
        items = items or self._items.decode(batch.data)
        return created, [items[n] for n in sorted(moved)], failed

    async def _event_id(
        self, conn: AsyncConnection, selector: tuple[Any, ...]
    ) -> tuple[str, int | None]:
        """The selector's wire field and its event id (None: not found), cached."""
        if selector not in self._events:
            event_id, link_prefix, name = selector
            data = ContactCreate(eventId=event_id, linkPrefix=link_prefix, eventName=name)
            chosen = service.event_selector(data)
            assert chosen is not None
            wire, kwargs = chosen
            found = await find_event_id(conn, self.account_id, **kwargs)
            self._events[selector] = (wire, found)
        return self._events[selector]
