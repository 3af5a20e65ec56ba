"""Which rows of an import file are the same contact: the dedupe key, and the keys found on
more than one row (a quick first pass). Kept free of SQLAlchemy (the reader process runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import msgspec

from contacts_api.contacts.bulk_files import FileFormat, csv_column_keys, csv_records


class _Keys(msgspec.Struct):
    email: Any = None
    phoneNumber: Any = None


_keys_decoder = msgspec.json.Decoder(_Keys)


def dedupe_key(email: Any, phone: Any) -> str | None:
    """What makes two rows the same contact in an import: the email, else the phone number."""
    if isinstance(email, str) and email:
        return email.lower()
    if isinstance(phone, str) and phone:
        return "tel:" + phone
    return None


def repeated_keys(text: IO[str], file_format: FileFormat, delimiter: str) -> set[str]:
    """The dedupe keys found on more than one row (a quick pass reading only those columns).

    The importer applies those rows last, together, so a contact spread over the file is
    written once with its net change, and a re-run of the file changes nothing.
    """
    seen: set[str] = set()
    repeated: set[str] = set()
    if file_format == "jsonl":
        for email_value, phone_value in _jsonl_keys(text):
            key = dedupe_key(email_value, phone_value)
            if key is None:
                continue
            if key in seen:
                repeated.add(key)
            else:
                seen.add(key)
        return repeated
    reader, headers = csv_records(text, delimiter)
    keys = csv_column_keys(headers or [])
    emails = [n for n, k in enumerate(keys) if k == "email"]
    phones = [n for n, k in enumerate(keys) if k == "phoneNumber"]
    if len(emails) == 1 and len(phones) <= 1:  # one column each, the usual file
        email = emails[0]
        phone = phones[0] if phones else len(keys) + 1
        emails = phones = []
    else:  # the first filled of several (they agree, or the row fails: CsvLayout.clash)
        email = phone = len(keys) + 1
    # dedupe_key inlined for CSV cells (always strings): this pass runs before the first batch
    # can be written, so its ~2 us a row delay the whole import.
    for record in reader:
        width = len(record)
        value = record[email] if email < width else _first_filled(record, emails)
        if value:
            key = value.lower()
        else:
            value = record[phone] if phone < width else _first_filled(record, phones)
            if not value:
                continue
            key = "tel:" + value
        if key in seen:
            repeated.add(key)
        else:
            seen.add(key)
    return repeated


def _first_filled(record: list[str], columns: list[int]) -> str:
    width = len(record)
    return next((record[n] for n in columns if n < width and record[n]), "")


def _jsonl_keys(text: IO[str]) -> Iterator[tuple[Any, Any]]:
    for line in text:
        try:
            keys = _keys_decoder.decode(line)
        except (msgspec.DecodeError, RecursionError):
            continue
        yield keys.email, keys.phoneNumber
