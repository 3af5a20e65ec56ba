"""One record of an import file, and its validation with the API's own rules.

`validate` turns a `SourceRow` into a validated contact with exactly the rules of POST
/v1/contacts (`rules.parse_contact_import`: the create's, plus the secondary email and
phone that PUT sets and `export` writes), or the `ValidationFailed` that goes to the error
report. Kept free of SQLAlchemy: the import's reader process runs it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import msgspec

from contacts_api.contacts.rules import parse_contact_import
from contacts_api.contacts.schemas import ContactImport
from contacts_api.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record of the file: its line number, what was read, and its fields."""

    row: int
    raw: str | list[str]  # a JSON line, or a CSV record's fields
    body: dict[str, Any] | None  # None: the line is not a JSON object
    form_error: str | None = None
    delimiter: str = ","
    last_line: int = 0  # a CSV record's last line, when it runs over several


# In the error report, a CSV cell or a JSON line beyond these is cut short, ending in CUT:
# no field the import takes is near that long, and a 30 MiB cell (a quote left open) had been
# copied whole through the reader, the writer and the report (the import's peak: 360 MB).
ORIGINAL_CELL_CHARS = 64 << 10
ORIGINAL_LINE_CHARS = 1 << 20
CUT = "…[cut]"


def original_text(raw: str | list[str], delimiter: str) -> str:
    """A record as text: a JSON line as it is, a CSV record's fields written back."""
    if isinstance(raw, str):
        return raw if len(raw) <= ORIGINAL_LINE_CHARS else raw[:ORIGINAL_LINE_CHARS] + CUT
    if any(len(cell) > ORIGINAL_CELL_CHARS for cell in raw):
        raw = [c if len(c) <= ORIGINAL_CELL_CHARS else c[:ORIGINAL_CELL_CHARS] + CUT for c in raw]
    echo = io.StringIO()
    # The line terminator is what makes csv quote a cell holding a line break (with "" it
    # left `two\nlines` bare, and the original read back as two records); it is cut off.
    csv.writer(echo, delimiter=delimiter, lineterminator="\r\n").writerow(raw)
    return echo.getvalue()[:-2]


Checked = tuple[ContactImport, dict[str, str] | None] | ValidationFailed
# A row read and validated: its line number, what was read, and what `validate` gives.
CheckedRow = tuple[int, str | list[str], Checked]


def parse_tracking(value: Any) -> tuple[dict[str, str] | None, list[str]]:
    """The import-only `tracking` object (as exported): JSON object of strings."""
    if value is None or value == "" or value == {}:
        return None, []
    if isinstance(value, str):
        # msgspec, not json.loads: json.loads lets a lone surrogate ("\ud800") through, which
        # no UTF-8 can carry on, and the import stopped half-way when writing its batch.
        try:
            value = msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            return None, ["Expected a JSON object"]
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return None, ["Expected an object of strings"]
    return value, []


def validate(source: SourceRow) -> Checked:
    """The row validated as POST /v1/contacts validates a body (plus `tracking`, and the
    secondary email and phone as PUT validates them).

    A CSV record over several lines that fails as a whole (its quotes do not pair up, or it
    has more cells than the header) says which lines it ran over: a quote left open reads the
    rows after it into one cell, up to the next quote, and they are in this one's report. A
    cell quoted as it should be that holds a line break is no sign of one: its row fails
    with its fields' messages alone, as the API gives them.
    """
    checked = _validate(source)
    if (
        isinstance(checked, ValidationFailed)
        and source.body is None
        and source.last_line > source.row
    ):
        checked.form_errors.insert(
            0,
            f"This row runs from line {source.row} to line {source.last_line}:"
            " is a quote left open?",
        )
    return checked


def _validate(source: SourceRow) -> Checked:
    if source.body is None:
        return ValidationFailed([source.form_error or "Invalid row"])
    tracking, tracking_errors = parse_tracking(source.body.get("tracking"))
    try:
        data = parse_contact_import(source.body)
    except ValidationFailed as exc:
        if tracking_errors:
            exc.field_errors["tracking"] = tracking_errors
        return exc
    if tracking_errors:
        return ValidationFailed(field_errors={"tracking": tracking_errors})
    return data, tracking
