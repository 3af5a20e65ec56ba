"""What the import and export write: the import's error report (`FILE.errors.csv`) and the
exported contacts' records. Kept free of SQLAlchemy (the import's reader process renders its
own failures)."""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import tempfile
from typing import IO, Any

import msgspec

from contacts_api.contacts.manage_schemas import ContactExtendedRead
from contacts_api.errors import UserError, ValidationFailed


class ErrorReport:
    """`FILE.errors.csv`: header `row,field,message,original`, one record per rejected row.

    Created on the first failure (a stale report from an earlier run is removed first). When
    it cannot be made there (the folder read-only or another user's, a stale report that
    cannot be removed, a name too long), it goes to the temporary folder instead
    (`FILE.errors.<random>.csv`, 0600): `path` then names it and `moved` says why.
    """

    HEADER = ("row", "field", "message", "original")
    FORM_FIELD = "(row)"
    _FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    _REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.EISDIR)

    def __init__(self, path: Any, mode: int = 0o666, source: Any = None) -> None:
        self.path = path
        self.mode = mode  # the source's permissions: its rows are no more readable here
        self.count = 0
        self.moved: str | None = None  # why the report is in the temporary folder
        self.in_the_way: Any = None  # what was at `path` and could not be removed
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._made: int | None = None  # the temporary folder's report, made up front
        # FILE a link to its own report's name: removing the stale report removed the data.
        same = False
        with contextlib.suppress(OSError):  # nothing there, or a name too long (see _move)
            same = source is not None and os.path.samefile(path, source)
        if same:
            raise UserError(f"cannot write {path}: it is the file being imported; rename one")
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            self._move(exc, f"{path.absolute()} is in the way and cannot be removed")
            if os.path.lexists(path):  # (not so for a name too long: nothing is there)
                self.in_the_way = path.absolute()
            return
        try:
            # Made and removed once now, to know whether it can be: the import once stopped
            # at the first rejected row, batches already committed, and every re-run there.
            os.close(os.open(path, self._FLAGS, mode))
            path.unlink()
        except OSError as exc:
            self._move(exc, f"{path.absolute().parent} cannot take the report")

    def _move(self, exc: OSError, why: str) -> None:
        if exc.errno not in self._REFUSED:
            raise exc
        if exc.errno == errno.ENAMETOOLONG:
            why = "FILE's name is too long for a report beside it"
        # Cut by bytes (a name's limit is 255 of them): 81 CJK characters are 243.
        stem = os.fsencode(self.path.name.removesuffix(".csv"))[:200]
        prefix = stem.decode("utf-8", "ignore") + "."
        self._made, name = tempfile.mkstemp(prefix=prefix, suffix=".csv")
        self.path, self.moved = type(self.path)(name), why

    def add_record(self, record: tuple[int, str, str, str]) -> None:
        """A record as `render` made it (the reader process renders its own failures)."""
        if self._file is None:
            # Exclusively: the stale report was removed at the start, and what appeared at
            # its name since (a link planted beside a file in a shared folder) is not
            # written through.
            created = (
                self._made if self._made is not None else os.open(self.path, self._FLAGS, self.mode)
            )
            self._made = None
            self._file = open(created, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.HEADER)
        self._writer.writerow(record)
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._made is not None:  # the temporary folder's report, never written: not kept
            os.close(self._made)
            self._made = None
            self.path.unlink(missing_ok=True)


def render(row: int, original: str, error: Exception) -> tuple[int, str, str, str]:
    """One record of the error report: row, fields, messages, the original record."""
    fields, messages = describe(error)
    return row, "; ".join(fields), "; ".join(messages), original


def describe(error: Exception) -> tuple[list[str], list[str]]:
    """The failing fields and, aligned with them, their messages."""
    if not isinstance(error, ValidationFailed):
        return ["email"], [str(error)]
    # The row's own errors are one field, `(row)`, their messages joined as a field's are.
    fields = [ErrorReport.FORM_FIELD] if error.form_errors else []
    messages = [", ".join(error.form_errors)] if error.form_errors else []
    for name, field_messages in error.field_errors.items():
        fields.append(name)
        messages.append(", ".join(field_messages))
    return fields, messages


# Export: the contact object's keys with the secondary email and phone (as the detail route
# shows them; the import reads them back), plus the tag's name so an import elsewhere
# recreates it.
EXPORT_COLUMNS = (*(f.encode_name for f in msgspec.structs.fields(ContactExtendedRead)), "tag")


def export_record(row: Any) -> dict[str, Any]:
    """One exported contact: the contact object (with tracking, the secondary email and phone)
    and `tag`, the tag's name."""
    from contacts_api.contacts.manage_service import extended_read

    record = msgspec.structs.asdict(extended_read(row))
    record["tag"] = row.tag_name
    return record


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
