"""The import reader's shortcuts give exactly what the create path's rule functions give."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contacts_api.contacts import import_reader
from contacts_api.contacts.bulk_files import csv_column_key, read_checked, read_rows
from contacts_api.contacts.bulk_rows import validate
from contacts_api.contacts.rules import given_columns, new_contact_values, parse_contact_import
from contacts_api.contacts.schemas import ContactImport
from contacts_api.contacts.tracking import merge_tracking, pairs_from_tracking, utm_pairs
from contacts_api.errors import ValidationFailed
from contacts_api.validation import rules_for
from tests.contacts.test_bulk_reader import BODIES

COLUMNS = [
    "account_id", "user_id", "email", "email_key", "first_name", "last_name", "status",
    "phone_number", "secondary_email", "secondary_phone_number", "preview_id", "tag_id",
    "event_id", "blocked_by_recaptcha", "blocked_id", "joined_time", "country", "time_zone",
    "ip_address", "referrer_url", "tracking", "created_at", "updated_at", "deleted_at",
]  # fmt: skip
SHAPED: list[tuple[dict[str, Any], dict[str, str] | None]] = [
    *((body, None) for body in BODIES),
    ({"email": "t@example.com", "utm": "utm_source=b&x=1"}, {"utm_source": "a", "x": "y"}),
    ({"phoneNumber": "+1", "joinedTime": "0999-01-01T00:00:00.5Z"}, {"first_utm_term": "t"}),
    ({"phoneNumber": "+12", "status": "DISQUALIFIED", "joinedTime": "2024-01-15T10:00Z"}, None),
    ({"email": "s@example.com", "secondary_email": "s2@example.com"}, None),
    ({"phoneNumber": "+13", "secondary_phoneNumber": "+14", "secondary_email": None}, None),
]


def _expected(
    options: import_reader.Options,
    data: ContactImport,
    tracking: dict[str, str] | None,
    email_key: str | None,
    now: datetime,
) -> list[Any]:
    """The row as `new_contact_values` makes it, times as the writer's database takes them."""
    pairs = utm_pairs(data.utm, data.referrerUrl)
    if tracking:
        first, last = pairs_from_tracking(tracking)
        pairs = first + pairs + last
    contact = new_contact_values(
        account_id=options.account_id,
        user_id=options.user_id,
        email_key=email_key,
        columns=given_columns(data, event_id=None, tag_id=None),
        pairs=pairs,
        now=now,
        preview_id="contact_preview",
    )
    contact["tracking"] = import_reader._json.encode(merge_tracking({}, pairs)).decode()
    contact["tag_id"] = data.tag  # the tag's name: the writer resolves it
    row = [contact.get(column) for column in options.columns]
    for n, value in enumerate(row):
        if isinstance(value, datetime):
            if options.dialect == "sqlite":
                row[n] = value.replace(tzinfo=None).isoformat(" ", "microseconds")
            else:
                row[n] = value.isoformat()
    return row


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_shaped_rows_are_new_contact_values(dialect: str) -> None:
    options = import_reader.Options(
        "-", "csv", ",", dialect, COLUMNS, 7, 8, "upsert", True, 100, True
    )
    shaper = import_reader._Shaper(options)
    preview = COLUMNS.index("preview_id")
    seen: set[str] = set()
    for now in (datetime(2025, 1, 2, 3, 4, 5, 6000, UTC), datetime(2025, 1, 2, 3, 4, 6, 0, UTC)):
        for body, tracking in SHAPED:
            data = parse_contact_import(body)
            key = data.email.lower() if data.email else None
            row = shaper.values(data, tracking, key, now)
            assert row[preview].startswith("contact_") and len(row[preview]) == 20
            assert row[preview] not in seen
            seen.add(row[preview])
            row[preview] = "contact_preview"
            assert row == _expected(options, data, tracking, key, now)


# Texts at the edges of ContactImport's rules: lengths in UTF-16 units around each maximum,
# NUL, non-ASCII digits and letters, trailing newlines that `$` would admit, year 0000, ...
TEXTS = [
    "Ann", "x" * 2, "x" * 3, "x" * 25, "x" * 26, "é" * 25, "é" * 26, "😀" * 12, "😀" * 13,
    "a" + "😀" * 12, "😀", "😀a", "é", "a\x00b", "\x00", " ", "²", "Line\nbreak",
    "a@b.com", "A.B@Example.COM", ".a@b.com", "a..b@c.com", "a@b.c", "a@b.com\n", "\uff41@b.com",
    "a" * 243 + "@example.com", "a" * 244 + "@example.com", "a@b-.com", "a@b.com\x00",
    "x@y.comé", "a.@b.com", "a_b+c'd@x-y.org", " a@b.com", "é@b.com",
    "+1555", "+", "123", "١٢٣", "+" + "1" * 19, "+" + "1" * 20, "1" * 20, "1" * 21, "+1\n",
    "9" * 4301, "0" * 4400 + "7",
    "POTENTIAL", "QUALIFIED", "DISQUALIFIED", "potential", " QUALIFIED", "QUALIFIED\x00",
    "y" * 45, "y" * 46, "y" * 50, "y" * 51, "😀" * 50, "😀" * 51, "y" * 100, "y" * 101,
    "y" * 255, "y" * 256, "y" * 1000, "y" * 1001, "😀" * 500, "😀" * 501,
    "2024-01-01T10:00:00.000Z", "2024-02-29T10:00Z", "2023-02-29T10:00Z", "0000-01-01T00:00Z",
    "0999-01-01T00:00Z", "2024-01-01T10:00:00.123456789Z", "2024-01-01T24:00Z",
    "2024-01-01 10:00Z", "2024-01-01T10:00:00+01:00", "2024-01-01T10:00Z\n",
    "\uff12024-01-01T10:00Z",
    "1900-02-29T00:00Z", "2000-02-29T00:00:00Z", "2024-12-31T23:59:59.9999999Z",
    "https://x.com/?utm_source=r", "not a url", "http://", "https://a b", "h:" + "x" * 498,
    "h:" + "x" * 499, "https://é.com/", "https://x.com/\n", "1http://x", "h:\u00a0",
    "1", "0", "2147483647", "2147483648", " 5 ", "1.0", "-1", "01", "\t7\n",
]  # fmt: skip


def _refused_by_check(rule: Any, texts: list[str]) -> set[int]:
    return {n for n, text in enumerate(texts) if text and rule.check(text) != (text, [])}


def test_refused_texts_are_those_check_refuses() -> None:
    rnd = random.Random(5)
    for rule in rules_for(ContactImport):
        for text in ["", *TEXTS]:  # alone: a column that passes whole
            assert rule.refused([text]) == _refused_by_check(rule, [text]), (rule.name, text)
        accepted = [t for t in TEXTS if not _refused_by_check(rule, [t])]
        assert rule.refused(["", *accepted, ""]) == set()
        for _ in range(50):
            texts = rnd.choices(["", *TEXTS], k=rnd.randrange(1, 12))
            assert rule.refused(texts) == _refused_by_check(rule, texts), (rule.name, texts)


def _csv_file(path: Path, header: list[str], rows: int, seed: int, clean: float) -> None:
    rnd = random.Random(seed)
    good = {
        "firstName": "Ann", "lastName": "Zoë", "status": "QUALIFIED", "tag": "vip 🎉",
        "joinedTime": "2024-02-29T10:00Z", "utm": "utm_source=a&x=1", "country": "DE",
        "timeZone": "Europe/Berlin", "ipAddress": "::1", "referrerUrl": "https://x.com/?a=b",
        "eventName": "Demo", "linkPrefix": "acme/demo", "eventId": "7", "utm_term": "t",
        "secondary_email": "Alt@Example.com", "secondary_phoneNumber": "+49301234567",
        "tracking": '{"utm_source":"s","first_utm_source":"f","utmKey_1":"k","utmValue_1":"v"}',
    }  # fmt: skip
    trackings = ["", "{}", "[1]", "{bad", '{"a":1}', '{"x":"\\u0001"}', '{"utm_medium":"m"}']
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for n in range(rows):
            record = []
            for column in header:
                key = csv_column_key(column) or ""
                if key == "email":
                    value = f"Lead{n % 40}@Example.com" if rnd.random() < 0.9 else ""
                elif key == "phoneNumber":
                    value = f"+1555{n % 30:04d}" if rnd.random() < 0.5 else ""
                else:
                    value = good.get(key, "junk")
                if rnd.random() > clean:
                    pool = trackings if key == "tracking" else ["", *TEXTS]
                    value = rnd.choice(pool)
                record.append(value)
            cut = rnd.random()
            if cut < 0.03:
                record = record[: rnd.randrange(len(record))]
            elif cut < 0.05:
                record.append("more")
            elif cut < 0.07:
                record = [""] * len(record)
            writer.writerow(record)


def _outcome(checked: Any) -> Any:
    if isinstance(checked, ValidationFailed):
        return {"form": checked.form_errors, "fields": checked.field_errors}
    return checked


HEADERS = [
    ["firstName", "lastName", "email", "phoneNumber", "status", "tag", "joinedTime", "utm",
     "country", "timeZone"],
    ["First Name", "E-mail", "Phone", "eventId", "eventName", "linkPrefix", "ipAddress",
     "Referer", "tz", "tracking", "Unknown", "Secondary Email", "secondary phone"],
    ["email", "phoneNumber", "utm", "utm_term", "status"],  # utm_* columns: row by row
    ["email", "Email Address", "phoneNumber", "tag"],  # one field twice: row by row
]  # fmt: skip


@pytest.mark.parametrize("header", HEADERS, ids=["bench", "aliases", "utm_column", "twice"])
@pytest.mark.parametrize("clean", [0.97, 0.6])
def test_csv_batches_are_validate_row_by_row(
    tmp_path: Path, header: list[str], clean: float
) -> None:
    path = tmp_path / "leads.csv"
    _csv_file(path, header, 600, len(header), clean)
    with open(path, newline="", encoding="utf-8") as f:
        expected = [(s.row, s.raw, _outcome(validate(s))) for s in read_rows(f, "csv", ",")]
    assert any(isinstance(e[2], dict) for e in expected)
    assert any(isinstance(e[2], tuple) for e in expected)
    for size in (1, 7, 100, 5000):
        with open(path, newline="", encoding="utf-8") as f:
            batches = list(read_checked(f, "csv", ",", size))
        got = [(row, raw, _outcome(checked)) for b in batches for row, raw, checked in b]
        assert got == expected
        for batch in batches[:-1]:  # a batch ends at its first valid row from the size-th on
            assert len(batch) >= size and isinstance(batch[-1][2], tuple)
            assert all(isinstance(c, ValidationFailed) for _, _, c in batch[size - 1 : -1])
