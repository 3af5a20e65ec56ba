"""The import reader's shortcuts give exactly what the create path's rule functions give."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contacts_api.contacts import import_reader
from contacts_api.contacts.rules import given_columns, new_contact_values, parse_contact_create
from contacts_api.contacts.schemas import ContactCreate
from contacts_api.contacts.tracking import merge_tracking, pairs_from_tracking, utm_pairs
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
]


def _expected(
    options: import_reader.Options,
    data: ContactCreate,
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
            data = parse_contact_create(body)
            key = data.email.lower() if data.email else None
            row = shaper.values(data, tracking, key, now)
            assert row[preview].startswith("contact_") and len(row[preview]) == 20
            assert row[preview] not in seen
            seen.add(row[preview])
            row[preview] = "contact_preview"
            assert row == _expected(options, data, tracking, key, now)
