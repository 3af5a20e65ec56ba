"""Import and export files: CSV (header row, common column aliases) and JSON Lines.

The import reads batches of records already validated (`read_checked`; CSV columns a batch at
a time, by `bulk_csv_layout.CsvLayout`); `read_rows`, one `SourceRow` per record that
`bulk_rows.validate` checks, is the reference the tests hold it to. Kept free of SQLAlchemy:
the import's reader process (`import_reader`) runs this module.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal

import msgspec

from contacts_api.contacts.bulk_csv_layout import CsvLayout
from contacts_api.contacts.bulk_rows import CheckedRow, SourceRow, validate
from contacts_api.errors import UserError, ValidationFailed
from contacts_api.validation import js_type_name

FileFormat = Literal["csv", "jsonl"]
SAMPLE_BYTES = 64 * 1024

# Normalised header (lower case, letters and digits only) -> the API's body key.
_ALIASES = {
    "firstname": "firstName", "first": "firstName", "givenname": "firstName",
    "lastname": "lastName", "last": "lastName", "surname": "lastName", "familyname": "lastName",
    "email": "email", "emailaddress": "email", "mail": "email",
    "phonenumber": "phoneNumber", "phone": "phoneNumber", "mobile": "phoneNumber",
    "mobilephone": "phoneNumber", "mobilenumber": "phoneNumber", "telephone": "phoneNumber",
    "status": "status", "leadstatus": "status",
    "tag": "tag", "joinedtime": "joinedTime", "joined": "joinedTime",
    "eventname": "eventName", "event": "eventName", "eventid": "eventId",
    "linkprefix": "linkPrefix", "utm": "utm",
    "country": "country", "countrycode": "country",
    "timezone": "timeZone", "tz": "timeZone",
    "ipaddress": "ipAddress", "ip": "ipAddress",
    "referrerurl": "referrerUrl", "referrer": "referrerUrl", "referer": "referrerUrl",
    "tracking": "tracking",
    "secondaryemail": "secondary_email",
    "secondaryphonenumber": "secondary_phoneNumber", "secondaryphone": "secondary_phoneNumber",
}  # fmt: skip
_UTM_COLUMN = re.compile(r"utm_[a-z0-9_]+")
_UTM_SEPARATORS = re.compile(r"[\s_-]+")
# The usual parameters written without a separator (`UTMSource`): where the others split.
_UTM_RUN_TOGETHER = {
    f"utm{name}": f"utm_{name}"
    for name in ("source", "medium", "campaign", "term", "content", "id")
}
_json_decoder = msgspec.json.Decoder()


def _normalise(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.strip().lower())


def csv_column_key(header: str) -> str | None:
    """The body key a CSV header stands for, `utm_*` columns as themselves, else None."""
    name = header.strip().lstrip("\ufeff")
    # `UTM Source`, `utm-medium` as `utm_source`, `utm_medium`: they were ignored, the
    # campaign's attribution lost without a word.
    utm = _UTM_SEPARATORS.sub("_", name.lower())
    if _UTM_COLUMN.fullmatch(utm):
        return utm
    normalised = _normalise(name)
    return _ALIASES.get(normalised) or _UTM_RUN_TOGETHER.get(normalised)


# Files often given instead of CSV, known by their first bytes: named, with what to do (each
# was "not UTF-8 text").
_NOT_TEXT = {
    b"\xff\xfe": 'UTF-16 text (Excel\'s "Unicode Text"); save it as CSV UTF-8',
    b"\xfe\xff": "UTF-16 text; save it as CSV UTF-8",
    b"\x1f\x8b": "a gzip file; decompress it first",
    b"PK\x03\x04": "a zip file (an .xlsx workbook?); save the sheet as CSV UTF-8",
}


_RESPONSE_OPENING = re.compile(rb'\{\s*"(data|contacts)"\s*:\s*[\[{]')


# Where a header has both, the specific column is the field's and the other is ignored:
# Shopify's `Country` (a country's name, too long for the field) beside `Country Code`.
_MORE_SPECIFIC = {"country": "countrycode"}


def csv_column_keys(headers: list[str]) -> list[str | None]:
    """Each header's body key (`csv_column_key`; None, an unknown column), a column that a
    more specific one beside it stands in for (`_MORE_SPECIFIC`) None too."""
    keys = [csv_column_key(h) for h in headers]
    names = [_normalise(h.lstrip("\ufeff")) for h in headers]
    for key, specific in _MORE_SPECIFIC.items():
        if specific in names:
            keys = [
                None if k == key and n != specific else k for k, n in zip(keys, names, strict=True)
            ]
    return keys


def detect_format(sample: bytes) -> tuple[FileFormat, str]:
    """JSON Lines or CSV (and its delimiter), judged by content; UserError when neither.

    `sample` is the file's first SAMPLE_BYTES (all of it when shorter)."""
    for magic, what in _NOT_TEXT.items():
        if sample.startswith(magic):
            raise UserError(f"unrecognised format: {what}")
    text = sample.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text and len(sample) < SAMPLE_BYTES:  # the whole file, and blank: no rows
        return "jsonl", ""  # (an empty account's JSON Lines export is an empty file)
    if text.startswith(b"{"):
        opening, newline, _ = text.partition(b"\n")
        if _RESPONSE_OPENING.match(opening):
            # The API's own list answer saved as it is: one failed row, and exit status 0.
            raise UserError(
                "unrecognised format: a JSON document (an API response?); use JSON Lines"
                " (one contact object a line), as `export --format jsonl` writes"
            )
        if newline and opening.rstrip().endswith((b"{", b"[")):
            # `{` then `"contacts": [` on the next lines: one JSON document, pretty-printed;
            # read as JSON Lines it was one failed row per line and a few imported.
            raise UserError(
                "unrecognised format: a JSON document spread over lines; use JSON Lines "
                "(one object a line)"
            )
        return "jsonl", ""
    if text.startswith(b"["):
        raise UserError("unrecognised format: a JSON array; use JSON Lines (one object a line)")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(text) - 4:  # not just a character cut at the sample's end
            raise UserError(
                "unrecognised format: not UTF-8 text (expected CSV or JSON Lines)"
            ) from None
        decoded = text[: exc.start].decode("utf-8")
    hint, first_line = _header_line(decoded)
    for delimiter in (hint,) if hint else (",", ";", "\t", "|"):
        headers = next(csv.reader([first_line], delimiter=delimiter), [])
        plausible = len(headers) > 1 or delimiter in (",", hint)
        if plausible and any(csv_column_key(h) for h in headers):
            return "csv", delimiter
    raise UserError(
        "unrecognised format: expected JSON Lines, or CSV with a header row naming contact "
        "fields (email, phoneNumber, firstName, ...)"
    )


_SEP_LINE = re.compile(r"sep=([,;\t|])", re.IGNORECASE)
_BLANK = " \t,;|"  # what a line or cell before the header may hold and still be blank


def _header_line(text: str) -> tuple[str | None, str]:
    """The delimiter an Excel `sep=;` line names (None without one) and the line that should
    be the header: the first one with a cell not blank. A sheet's first row left empty
    (`,,`) or a line of spaces before the header made the file "unrecognised"."""
    hint = None
    for line in text.splitlines():
        if _is_blank_line(line):
            continue
        sep = _SEP_LINE.fullmatch(line.strip(" "))
        if hint is None and sep:
            hint = sep.group(1)
            continue
        return hint, line
    return hint, ""


def _is_blank_line(line: str) -> bool:
    """No cell but blank ones, quoted or not (`"",""`, `" ",`); a quote left open (a lone
    `"`) is no blank: the reader reads the rest of the file into one cell from there."""
    return line.count('"') % 2 == 0 and not line.replace('"', "").strip(_BLANK)


def _is_header_filler(record: list[str]) -> bool:
    """A record before the header that is none: no cell but blank ones, or Excel's `sep=;`
    line (read with its own delimiter: `sep=` and an empty cell)."""
    cells = [cell.strip(_BLANK + '"') for cell in record]  # `"",""` read with `;`: `",""`
    return not any(cells) or (cells[0].lower() == "sep=" and not any(cells[1:]))


def read_rows(text: IO[str], file_format: FileFormat, delimiter: str) -> Iterator[SourceRow]:
    """Every record of an open text file, streamed, one at a time: the plain reading that
    tests/contacts/test_import_reader_parity.py checks `read_checked` (the import's) against."""
    if file_format == "jsonl":
        yield from _read_jsonl(text)
    else:
        yield from _read_csv(text, delimiter)


def read_checked(
    text: IO[str], file_format: FileFormat, delimiter: str, size: int
) -> Iterator[list[CheckedRow]]:
    """Every record of an open text file, validated, in batches of `size` rows or a few more.

    Each row's result is what `validate(row)` gives; CSV columns are validated a batch at a
    time (`CsvLayout.checked`). As the import has always cut its batches, a batch ends at
    its first valid row from the `size`-th on (rows that fail do not end one), and the file
    is read no further than that row.
    """
    take = _csv_taker(text, delimiter) if file_format == "csv" else _jsonl_taker(text)
    while batch := take(max(size, 1)):
        while isinstance(batch[-1][2], ValidationFailed) and (more := take(1)):
            batch += more
        yield batch


def _jsonl_taker(text: IO[str]) -> Callable[[int], list[CheckedRow]]:
    rows = _read_jsonl(text)

    def take(count: int) -> list[CheckedRow]:
        return [(s.row, s.raw, validate(s)) for s in itertools.islice(rows, count)]

    return take


# Python's csv refuses a cell over 128 KiB, which stopped a whole import. A cell this large
# is no contact's, but it is one row's problem (too long for its field, in the report); only
# beyond this bound, where a quote left open swallows the file, does the import stop.
CSV_CELL_LIMIT = 32 << 20
csv.field_size_limit(CSV_CELL_LIMIT)


def csv_records(text: IO[str], delimiter: str) -> tuple[Any, list[str] | None]:
    """A csv reader over `text` and the header: the first record not blank (a file may open
    with blank lines, empty rows, Excel's `sep=` line: `_is_header_filler`), or None for a
    file of none. A cell over CSV_CELL_LIMIT is a UserError
    naming its line, whenever the reader meets it."""
    reader = _CheckedReader(text, delimiter)
    for record in reader:
        if not _is_header_filler(record):
            return reader, record
    return reader, None


# A record over more lines than this fails (no lead's cells hold that many line breaks: a
# quote left open ran on). Past it, its lines are no longer kept for the quote check: a cell of
# 30 MiB of line breaks had made a list of 30 million lines, and the reader 574 MB.
MAX_RECORD_LINES = 10_000


def _kept_lines(text: IO[str], kept: list[str]) -> Iterator[str]:
    """The file's lines, each also added to `kept` (the lines of the record being read), up
    to one more than MAX_RECORD_LINES."""
    for line in text:
        if len(kept) <= MAX_RECORD_LINES:
            kept.append(line)
        yield line


class _CheckedReader:
    """csv's reader, with two checks: a cell over CSV_CELL_LIMIT stops the import naming its
    line, and `unpaired` tells whether the record just read, when it runs over several
    lines, has quotes that do not pair up."""

    def __init__(self, text: IO[str], delimiter: str) -> None:
        self._kept: list[str] = []
        self._reader = csv.reader(_kept_lines(text, self._kept), delimiter=delimiter)
        self._delimiter = delimiter
        self.unpaired: str | None = None

    @property
    def line_num(self) -> int:
        return int(self._reader.line_num)

    def __iter__(self) -> _CheckedReader:
        return self

    def __next__(self) -> list[str]:
        kept = self._kept
        kept.clear()
        try:
            record: list[str] = next(self._reader)
        except csv.Error as exc:
            raise UserError(
                f"line {self._reader.line_num}: {exc} (a cell over {CSV_CELL_LIMIT >> 20} MiB:"
                " is a quote left open?)"
            ) from None
        if len(kept) > MAX_RECORD_LINES:
            self.unpaired = f"A record of over {MAX_RECORD_LINES:,} lines is no lead's"
        else:
            self.unpaired = _unpaired_quotes(kept, self._delimiter) if len(kept) > 1 else None
        return record


def _unpaired_quotes(lines: list[str], delimiter: str) -> str | None:
    """The error of a record over several lines whose quotes do not pair up, else None.

    csv's lenient reading, which the import keeps for one-line records (`"Jo"hn` reads as
    `John`), lets a quote left open read the rows after it into one cell: to the end of
    the file, or to the next quote, where more text after that quote then joins the cell.
    Either way those rows were lost without a word when the cell was in a column the import
    ignores. Read strictly, such a record is an error, where a cell that holds line breaks
    and is quoted as it should be is not. Spaces between a closing quote and the delimiter or
    the line's end (`"two\nlines" ,`) are let through, as the lenient reading takes them.
    """
    spaces = re.compile(rf'"[ \t]+(?={re.escape(delimiter)}|\r|\n|$)')
    try:
        for _ in csv.reader(
            (spaces.sub('"', line) for line in lines), delimiter=delimiter, strict=True
        ):
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            return "A quote in it is never closed, so it ran on to the end of the file"
        return "Its quotes do not pair up: a quoted cell has more text after its closing quote"
    return None


def _csv_taker(text: IO[str], delimiter: str) -> Callable[[int], list[CheckedRow]]:
    reader, headers = csv_records(text, delimiter)
    if headers is None:
        return lambda count: []
    layout = CsvLayout(csv_column_keys(headers), headers)
    start = reader.line_num + 1

    def take(count: int) -> list[CheckedRow]:
        nonlocal start
        numbers: list[int] = []
        records: list[list[str]] = []
        ends: list[int] = []
        unpaired: dict[int, str] = {}  # a record's position in the batch: its quotes' error
        for record in reader:
            number, start = start, reader.line_num + 1
            if not any(record):
                continue
            if reader.unpaired is not None:
                unpaired[len(records)] = reader.unpaired
            numbers.append(number)
            records.append(record)
            ends.append(reader.line_num)
            if len(records) >= count:
                break
        return layout.checked(numbers, records, delimiter, ends, unpaired) if records else []

    return take


def _read_jsonl(text: IO[str]) -> Iterator[SourceRow]:
    for number, line in enumerate(text, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            body = _json_decoder.decode(stripped)
        except (msgspec.DecodeError, RecursionError):  # too deep to decode: malformed too
            yield SourceRow(number, stripped, None, "Malformed JSON")
            continue
        if not isinstance(body, dict):
            yield SourceRow(
                number, stripped, None, f"Expected object, received {js_type_name(body)}"
            )
            continue
        yield SourceRow(number, stripped, body)


def _read_csv(text: IO[str], delimiter: str) -> Iterator[SourceRow]:
    reader, headers = csv_records(text, delimiter)
    if headers is None:
        return
    layout = CsvLayout(csv_column_keys(headers), headers)
    start = reader.line_num + 1
    for record in reader:
        number, start = start, reader.line_num + 1
        if not any(record):
            continue
        yield layout.source(number, record, delimiter, reader.line_num, reader.unpaired)


def first_bad_utf8(path: str) -> tuple[int, int]:
    """Where the file stops being UTF-8: (line, byte offset), both counted from 1. Read in
    1 MiB pieces (a character cut at a piece's end is carried to the next)."""
    line, offset, carry = 1, 0, b""
    with open(path, "rb") as file:
        while True:
            piece = file.read(1 << 20)
            data = carry + piece
            try:
                data.decode()
                good, carry = data, b""
            except UnicodeDecodeError as exc:
                good, carry = data[: exc.start], data[exc.start :]
                if piece and exc.end == len(data) and exc.reason == "unexpected end of data":
                    pass  # a character cut at the piece's end: its rest comes next
                else:
                    return line + good.count(b"\n"), offset + len(good) + 1
            line, offset = line + good.count(b"\n"), offset + len(good)
            if not piece:
                return line, offset + 1  # every byte was UTF-8: past the end
