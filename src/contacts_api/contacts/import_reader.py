"""The import's reader process: reads, validates and shapes rows so the writer only writes.

`contacts-api import` starts `python -m contacts_api.contacts.import_reader OPTIONS-JSON` and
reads framed msgpack messages from its stdout (4-byte big-endian length, then the message):
a `Batch` per `batch_size` rows read, then `Deferred` batches (the contacts seen on more than
one row, whole), then `Done`; or a `ReaderError` with a one-line message. Parsing, validation
and the shaping of new contacts (the same rule functions as POST /v1/contacts) are about two
thirds of an import's CPU time, so on two cores they run here, beside the writer.

Only light modules are imported (no SQLAlchemy): the process is ready in ~0.1 s. It ignores
SIGINT (the parent owns Ctrl-C and kills it) and exits when its stdout closes.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import signal
import struct
import sys
from datetime import datetime
from functools import lru_cache
from typing import IO, Any

import msgspec

from contacts_api.contacts import bulk_dedupe, bulk_files, bulk_output, bulk_rows
from contacts_api.contacts.import_deferred import DeferredRows
from contacts_api.contacts.rules import (
    PLAIN_FIELDS,
    SECONDARY_FIELDS,
    new_contact_values,
    new_preview_ids,
)
from contacts_api.contacts.schemas import ContactImport
from contacts_api.contacts.tracking import cached_utm_pairs, merge_tracking, pairs_from_tracking
from contacts_api.errors import UserError, ValidationFailed
from contacts_api.timeutil import parse_zulu, utcnow

FRAME_HEADER = struct.Struct(">I")


class Options(msgspec.Struct, frozen=True):
    """What the writer tells the reader (argv[1], JSON)."""

    path: str
    file_format: str
    delimiter: str
    dialect: str  # "sqlite" or "postgresql": how times are written
    columns: list[str]  # the columns of a row of `Batch.fast`, in order
    account_id: int
    user_id: int
    duplicate_email: str
    match_phone: bool
    batch_size: int
    fast: bool  # False: every row takes the writer's general path (webhooks need ids)
    parent_pid: int = 0  # the writer (to notice it died before we asked to die with it)


class Batch(msgspec.Struct, tag=True, array_like=True):
    """The rows read since the previous batch.

    `fast` holds the rows shaped as new contacts, ready to insert: one JSON array, a row
    being the values of `Options.columns` (the tag's name in place of tag_id, event_id
    None). `keys` (a JSON array) are their email keys and `events` their event selectors
    (None: no row names an event). `data` holds the same rows as `Item`s (msgpack), decoded
    by the writer only for rows that cannot be inserted as they are (their contact exists,
    their event is unknown). `slow` rows take the general path; `failures` are report
    records (row, fields, messages, original).
    """

    consumed: int  # bytes of the file read so far (the progress bar)
    read: int
    failures: list[tuple[int, str, str, str]]
    count: int  # rows in `fast`
    fast: str
    keys: str
    tag_names: list[str]  # the distinct tags `fast` names
    events: list[tuple[int | None, str | None, str | None] | None] | None
    data: bytes
    slow: list[Item]


class Deferred(msgspec.Struct, tag=True, array_like=True):
    """Rows of contacts that appear more than once in the file, whole contacts, file order."""

    items: list[Item]


class Done(msgspec.Struct, tag=True, array_like=True):
    consumed: int
    peak_mb: float | None  # this process's peak resident memory (Linux), for the benchmark


class ReaderError(msgspec.Struct, tag=True, array_like=True):
    message: str


class Item(msgspec.Struct, array_like=True):
    """A valid row for the writer's general path: what `BulkItem` is built from."""

    row: int
    data: Any  # a ContactImport; the writer decodes a dict and builds it (no re-validation)
    tracking: dict[str, str] | None
    raw: str | list[str]  # to write the original record back if the writer rejects it


Message = Batch | Deferred | Done | ReaderError


class CountingReader(io.RawIOBase):
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


_encoder = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()


@lru_cache(maxsize=8192)
def _tracking_json(utm: str | None, referrer_url: str | None) -> str:
    """A new contact's tracking column for one touch, as JSON: a pure function of the touch,
    memoised (merging and encoding it per row was ~12% of the reader's time)."""
    return _json.encode(merge_tracking({}, cached_utm_pairs(utm, referrer_url))).decode()


class _Shaper:
    """A valid row as the writer's INSERT parameters, for a contact that does not exist yet.

    Per batch (one `now`), `new_contact_values` is asked once for a new contact's defaults,
    laid out as a row; a contact's row is that template with the fields it gave written over
    (what `new_contact_values(columns=given_columns(...))` does, which the tests compare). Per
    row: 1.1 us instead of 4.9 us for the dict, the column lookups and the time texts.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self.columns = options.columns
        self.sqlite = options.dialect == "sqlite"
        self.times = [n for n, c in enumerate(self.columns) if c.endswith(("_time", "_at"))]
        self.tracking = self.columns.index("tracking")
        self.tag = self.columns.index("tag_id")
        self.email_key = self.columns.index("email_key")
        self.preview_id = self.columns.index("preview_id")
        fields = ContactImport.__struct_fields__
        # (position in ContactImport, position in the row) of each field given_columns copies.
        self.plain = [(fields.index(wire), self.columns.index(column))
                      for wire, column in (PLAIN_FIELDS | SECONDARY_FIELDS).items()]  # fmt: skip
        self.joined_at = fields.index("joinedTime")
        self.joined_time = self.columns.index("joined_time")
        self._joined_text: dict[str, str] = {}  # joinedTime as given -> as the database takes it
        self._preview_ids: list[str] = []
        self._template: list[Any] = []
        self._now: datetime | None = None

    def template(self, now: datetime) -> list[Any]:
        """A new contact's row before its fields: `new_contact_values` with none given."""
        if now != self._now:
            contact = new_contact_values(
                account_id=self.options.account_id,
                user_id=self.options.user_id,
                email_key=None,
                columns={},
                pairs=[],
                now=now,
                preview_id="-",  # each row's own is set in `values`
            )
            values = [contact.get(column) for column in self.columns]
            values[self.tag] = None
            if self.sqlite:  # as SQLAlchemy binds a Boolean there; Python's sqlite3 binds
                # a bool only after a lookup in its adapter registry (import_repository)
                values = [int(v) if isinstance(v, bool) else v for v in values]
            for n in self.times:
                value = values[n]
                if value is not None:
                    values[n] = self._time(value)
            self._template, self._now = values, now
        return self._template

    def values(self, data: ContactImport, tracking: dict[str, str] | None, email_key: Any,
               now: datetime) -> list[Any]:  # fmt: skip
        if tracking:
            first, last = pairs_from_tracking(tracking)
            pairs = first + cached_utm_pairs(data.utm, data.referrerUrl) + last
            tracking_json = _json.encode(merge_tracking({}, pairs)).decode()
        else:
            tracking_json = _tracking_json(data.utm, data.referrerUrl)
        values = (self._template if now == self._now else self.template(now)).copy()
        given = msgspec.structs.astuple(data)
        for field, n in self.plain:
            value = given[field]
            if value is not None:
                values[n] = value
        joined = given[self.joined_at]
        if joined is not None:
            text = self._joined_text.get(joined)
            if text is None:
                if len(self._joined_text) > 100_000:
                    self._joined_text.clear()
                text = self._joined_text[joined] = self._time(parse_zulu(joined))
            values[self.joined_time] = text
        if not self._preview_ids:
            self._preview_ids = new_preview_ids(1000)[::-1]  # taken from the end, in order
        values[self.preview_id] = self._preview_ids.pop()
        values[self.email_key] = email_key
        values[self.tracking] = tracking_json
        values[self.tag] = data.tag
        return values

    def _time(self, value: datetime) -> str:
        """A time as the writer's database takes it from JSON text. On SQLite exactly what
        SQLAlchemy binds for UTCDateTime (naive UTC text with microseconds; the tests compare
        the two); on PostgreSQL ISO 8601 with its offset, cast to timestamptz."""
        if self.sqlite:
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return value.isoformat()


def read_file(options: Options, send: Any) -> None:
    """Read the whole file, calling `send(message)` for each batch, then Done."""
    repeated: set[str] = set()
    if options.duplicate_email == "allow":
        # No first pass over the file (repeated keys) finds its bad bytes before a batch is
        # written: this decoding pass does, so a file that is not UTF-8 is refused whole.
        with open(options.path, encoding="utf-8-sig", newline="") as scan:
            while scan.read(1 << 20):
                pass
    else:
        with open(options.path, encoding="utf-8-sig", newline="") as scan:
            repeated = bulk_dedupe.repeated_keys(scan, options.file_format, options.delimiter)  # type: ignore[arg-type]
    shaper = _Shaper(options)
    keyed = options.duplicate_email != "allow"
    deferred = DeferredRows()
    counter = CountingReader(open(options.path, "rb"))  # noqa: SIM115 - closed below
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
    with text:
        batches = bulk_files.read_checked(
            text,
            options.file_format,  # type: ignore[arg-type]
            options.delimiter,
            options.batch_size,
        )
        while True:
            batch = Batch(counter.consumed, 0, [], 0, "", "", [], None, b"", [])
            items: list[Item] = []
            fast: list[list[Any]] = []
            keys: list[str] = []
            events: list[tuple[int | None, str | None, str | None] | None] = []
            now = utcnow()
            for number, raw, checked in next(batches, ()):
                batch.read += 1
                if isinstance(checked, ValidationFailed):
                    original = bulk_rows.original_text(raw, options.delimiter)
                    batch.failures.append(bulk_output.render(number, original, checked))
                    continue
                data, tracking = checked
                item = Item(number, data, tracking, raw)
                key = bulk_dedupe.dedupe_key(data.email, data.phoneNumber)
                if key is not None and key in repeated:
                    deferred.add(key, _encoder.encode(item))
                elif not options.fast or (options.match_phone and data.email is None):
                    batch.slow.append(item)  # e.g. a match by phone number: looked up there
                else:
                    email_key = data.email.lower() if keyed and data.email else None
                    fast.append(shaper.values(data, tracking, email_key, now))
                    if email_key is not None:
                        keys.append(email_key)
                    selector = (data.eventId, data.linkPrefix, data.eventName)
                    events.append(selector if any(selector) else None)
                    items.append(item)
            if not batch.read:
                break
            batch.consumed = counter.consumed
            batch.count = len(fast)
            batch.fast = _json.encode(fast).decode()
            batch.keys = _json.encode(keys).decode()
            batch.tag_names = sorted({row[shaper.tag] for row in fast if row[shaper.tag]})
            if any(events):
                batch.events = events
            batch.data = _encoder.encode(items)
            send(batch)
            gc.collect(1)
    try:
        # Whole contacts a batch: a chunk ends only where the next row is another contact's.
        # Each record is an Item encoded already: msgspec writes a Raw's bytes as they are.
        chunk: list[Any] = []
        chunk_key = None
        for key, record in deferred.grouped():
            if len(chunk) >= options.batch_size and key != chunk_key:
                send(Deferred(chunk))
                chunk = []
            chunk.append(msgspec.Raw(record))
            chunk_key = key
        if chunk:
            send(Deferred(chunk))
    finally:
        deferred.close()
    send(Done(counter.consumed, _peak_mb()))


def _peak_mb() -> float | None:
    """VmHWM: the peak resident memory of this program (not of the parent it was forked
    from, which getrusage's ru_maxrss would report)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _die_with_parent(parent: int) -> None:
    """Linux: be killed when the writer dies (even by SIGKILL), not only at our next write
    (EPIPE), which a long first pass over a big file would put off."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:  # it died before the request took effect
        os._exit(0)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    # The collector's automatic passes cost ~10% here (every row makes several containers);
    # the young generations are collected once per batch instead (read_file).
    gc.freeze()
    gc.disable()
    out = sys.stdout.buffer
    buffer = bytearray()

    def send(message: Message) -> None:
        buffer.clear()
        _encoder.encode_into(message, buffer, 4)
        buffer[:4] = FRAME_HEADER.pack(len(buffer) - 4)
        out.write(buffer)
        out.flush()

    try:
        options = msgspec.json.decode(sys.argv[1], type=Options)
        _die_with_parent(options.parent_pid)
        read_file(options, send)
    except BrokenPipeError:
        return 0  # the writer is gone (killed, or stopped early): nothing left to do
    except UnicodeDecodeError as exc:
        where = ""
        with contextlib.suppress(OSError):  # gone since: the reason alone
            line, byte = bulk_files.first_bad_utf8(options.path)
            where = f" at line {line:,}, byte {byte:,}"
        message = f"not UTF-8 text ({exc.reason}{where}); save it as UTF-8"
        send(ReaderError(f"cannot read {options.path}: {message}"))
    except OSError as exc:
        send(ReaderError(f"cannot read {options.path}: {exc.strerror or exc}"))
    except UserError as exc:  # the file's own fault, said in one line
        send(ReaderError(f"cannot read {options.path}: {exc}"))
    except Exception as exc:  # a bug: still one clear line for the operator, no traceback
        send(ReaderError(f"import reader failed: {exc.__class__.__name__}: {exc}"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
