"""CLI import/export through `import_file` / `export_contacts`: counts, error report, re-runs,
in-file duplicates, and an export -> import round trip."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contacts_api.accounts.schemas import Principal
from contacts_api.bulk_export import export_contacts
from contacts_api.bulk_jobs import import_file
from contacts_api.contacts import import_deferred, manage_service, service
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table, tag_table
from contacts_api.timeutil import utcnow
from tests.factories import AccountFixture, count_contacts, new_account, new_event

HEADER = [
    "First Name", "last_name", "Email", "Phone", "status", "tag", "joinedTime", "Event",
    "utm", "country", "timeZone", "ipAddress", "referrerUrl", "eventId",
    "Secondary Email", "secondary_phoneNumber",
]  # fmt: skip

# One row per seed rule (and a few of ours), with the field(s) the report must name.
INVALID_ROWS: list[tuple[dict[str, str], str]] = [
    ({"First Name": "F" * 26, "Email": "r1@example.com"}, "firstName"),
    ({"last_name": "L" * 26, "Email": "r2@example.com"}, "lastName"),
    ({"Email": "not-an-email"}, "email"),
    ({"Email": ".dot@example.com"}, "email"),
    ({"Phone": "+1-555-0100"}, "phoneNumber"),
    ({"Email": "r5@example.com", "status": "WON"}, "status"),
    ({"Email": "r6@example.com", "tag": "t" * 101}, "tag"),
    ({"Email": "r7@example.com", "joinedTime": "2023-02-29T10:00:00Z"}, "joinedTime"),
    ({"Email": "r8@example.com", "joinedTime": "2024-01-15T10:00:00+01:00"}, "joinedTime"),
    ({"Email": "r9@example.com", "Event": "No Such Event"}, "eventName"),
    ({"Email": "r10@example.com", "utm": "u=" + "x" * 1000}, "utm"),
    ({"Email": "r11@example.com", "country": "USA"}, "country"),
    ({"Email": "r12@example.com", "timeZone": "Z" * 51}, "timeZone"),
    ({"Email": "r13@example.com", "ipAddress": "1" * 46}, "ipAddress"),
    ({"Email": "r14@example.com", "referrerUrl": "not a url"}, "referrerUrl"),
    ({"Email": "r15@example.com", "eventId": "0"}, "eventId"),
    ({"Email": "r16@example.com", "eventId": "\u00b2"}, "eventId"),  # isdigit(), not a number
    ({"Email": "r17@example.com", "joinedTime": "0000-01-01T00:00Z"}, "joinedTime"),
    ({"First Name": "Nobody"}, "(row)"),
    ({"Email": "bad@", "Phone": "abc"}, "email; phoneNumber"),
    # PUT's rules for the secondary email and phone (export writes them, import reads them)
    ({"Email": "r18@example.com", "Secondary Email": "nope@"}, "secondary_email"),
    ({"Email": "r19@example.com", "secondary_phoneNumber": "+1 555"}, "secondary_phoneNumber"),
]


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, HEADER)
        writer.writeheader()
        writer.writerows(rows)


def read_report(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


async def snapshot(db: Database, account_id: int) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(contact_table)
            .where(contact_table.c.account_id == account_id)
            .order_by(contact_table.c.id)
        )
        return [dict(r._mapping) for r in rows]


async def create(db: Database, account: AccountFixture, body: dict[str, Any]) -> None:
    principal = Principal(account.account_id, account.user_id, 0)
    async with db.transaction() as conn:
        await service.create_contact(
            conn,
            principal,
            service.parse_contact_create(body),
            duplicate_email="upsert",
            now=utcnow(),
        )


async def put(db: Database, account: AccountFixture, body: dict[str, Any]) -> None:
    """PUT /v1/contacts's change of the live contact holding body's email."""
    principal = Principal(account.account_id, account.user_id, 0)
    async with db.transaction() as conn:
        contact_id = (
            await conn.execute(
                sa.select(contact_table.c.id).where(
                    contact_table.c.account_id == account.account_id,
                    contact_table.c.email_key == body["email"].lower(),
                )
            )
        ).scalar_one()
        update = manage_service.parse_contact_update({**body, "id": contact_id})
        await manage_service.update_contact(
            conn, principal, update, duplicate_email="upsert", now=utcnow()
        )


async def comparable(db: Database, account_id: int) -> list[dict[str, Any]]:
    """The account's contacts as a user sees them (no ids or times of ours), by email."""
    keep = ("email", "first_name", "last_name", "phone_number", "status", "joined_time",
            "country", "time_zone", "ip_address", "referrer_url", "tracking",
            "secondary_email", "secondary_phone_number")  # fmt: skip
    async with db.read() as conn:
        tag_names = dict((await conn.execute(sa.select(tag_table.c.id, tag_table.c.name))).all())
    return sorted(
        (
            {**{k: r[k] for k in keep}, "tag": tag_names.get(r["tag_id"])}
            for r in await snapshot(db, account_id)
        ),
        key=lambda r: (str(r["email"]), str(r["phone_number"])),
    )


async def test_fields_absent_from_a_batchs_first_rows_are_stored_for_later_ones(
    db: Database, tmp_path: Path
) -> None:
    """The SQLite insert leaves out columns empty in every row of a batch: a column empty
    only in the first rows must still be written for the rows that have it."""
    full = {
        "firstName": "Full",
        "lastName": "Row",
        "phoneNumber": "+15551230000",
        "status": "QUALIFIED",
        "tag": "vip",
        "joinedTime": "2024-02-29T23:59:59.123Z",
        "utm": "utm_source=google",
        "country": "US",
        "timeZone": "America/New_York",
        "ipAddress": "192.168.1.1",
        "referrerUrl": "https://example.com/signup?utm_term=shoes",
    }
    bodies: list[dict[str, Any]] = [{"email": "sparse@example.com"}, {"phoneNumber": "+15550001"}]
    bodies += [{**full, "email": f"full{i}@example.com"} for i in range(3)]
    # Each field given by one row only, after rows without it.
    bodies += [
        {"email": f"only-{field}@example.com", field: value} for field, value in full.items()
    ]
    for body in bodies:  # never empty (it defaults to the time of the create): a fixed one
        body.setdefault("joinedTime", full["joinedTime"])
    via_api = await new_account(db)
    for body in bodies:
        await create(db, via_api, body)
    imported = await new_account(db, "imported", "owner@imported.test")
    path = tmp_path / "leads.jsonl"
    path.write_text("".join(json.dumps(body) + "\n" for body in bodies))

    summary = await import_file(db, path, imported.name)

    assert (summary.created, summary.failed) == (len(bodies), 0)
    stored = await comparable(db, imported.account_id)
    assert stored == await comparable(db, via_api.account_id)
    assert {c["email"]: c["ip_address"] for c in stored}["only-ipAddress@example.com"] == (
        "192.168.1.1"
    )


async def test_import_counts_report_duplicates_and_idempotent_rerun(
    db: Database, tmp_path: Path
) -> None:
    account = await new_account(db)
    await new_event(db, account, "Product Demo", "acme/demo")
    await create(db, account, {"email": "existing@example.com", "firstName": "Old"})
    valid = [
        {
            "First Name": f"Lead{i}",
            "Email": f"lead{i}@example.com",
            "Phone": f"+1555000{i:04d}",
            "status": "QUALIFIED",
            "tag": f"list-{i % 3}",
            "joinedTime": "2024-01-15T10:00:00.000Z",
            "Event": "Product Demo",
            "utm": "utm_source=google&utm_medium=cpc",
            "referrerUrl": "https://example.com/?utm_campaign=spring",
            "secondary_phoneNumber": f"+1666000{i:04d}",
        }
        for i in range(30)
    ]
    rows: list[dict[str, str]] = valid[:10]
    rows.append({"Email": "dup@example.com", "First Name": "A", "utm": "utm_source=first"})
    rows += [r for r, _ in INVALID_ROWS[:9]]
    rows.append(
        {"Email": "EXISTING@example.com", "last_name": "New", "Secondary Email": "alt@example.com"}
    )
    rows += valid[10:]
    rows.append({"Email": "DUP@example.com", "last_name": "Z", "utm": "utm_source=second"})
    rows += [r for r, _ in INVALID_ROWS[9:]]
    rows.append({"Phone": "+15559990000", "First Name": "PhoneOnly"})
    path = tmp_path / "leads.csv"
    write_csv(path, rows)

    summary = await import_file(db, path, account.name, batch_size=7)

    # 30 valid + dup + phone-only are new; the second dup row and the existing email update.
    assert (summary.created, summary.updated, summary.unchanged) == (32, 2, 0)
    assert summary.failed == len(INVALID_ROWS)
    assert summary.rows == len(rows)
    assert await count_contacts(db, account.account_id) == 33
    report = read_report(tmp_path / "leads.csv.errors.csv")
    assert list(report[0]) == ["row", "field", "message", "original"]
    expected_lines = [i + 2 for i, r in enumerate(rows) if any(r is bad for bad, _ in INVALID_ROWS)]
    assert [int(r["row"]) for r in report] == expected_lines
    assert [r["field"] for r in report] == [field for _, field in INVALID_ROWS]
    by_field = {r["field"]: r for r in report}
    assert by_field["email; phoneNumber"]["message"] == (
        "Invalid email format; Invalid phone number format"
    )
    assert by_field["eventName"]["message"] == "Event not found"
    assert by_field["(row)"]["message"] == "Either email or phoneNumber is required"
    assert by_field["status"]["original"].startswith(",,r5@example.com,,WON")

    contacts = {c["email_key"]: c for c in await snapshot(db, account.account_id)}
    dup = contacts["dup@example.com"]
    assert (dup["first_name"], dup["last_name"], dup["email"]) == ("A", "Z", "DUP@example.com")
    assert dup["tracking"] == {"utm_source": "second", "first_utm_source": "first"}
    existing = contacts["existing@example.com"]
    assert (existing["first_name"], existing["last_name"]) == ("Old", "New")
    assert existing["secondary_email"] == "alt@example.com"
    lead = contacts["lead3@example.com"]
    assert lead["secondary_phone_number"] == "+16660000003"
    assert lead["status"] == "QUALIFIED" and lead["event_id"] is not None
    assert lead["tracking"]["first_utm_campaign"] == "spring"
    async with db.read() as conn:
        tags = (await conn.execute(sa.select(sa.func.count()).select_from(tag_table))).scalar()
    assert tags == 3

    before = await snapshot(db, account.account_id)
    again = await import_file(db, path, account.name, batch_size=50)
    assert (again.created, again.updated, again.failed) == (0, 0, len(INVALID_ROWS))
    assert again.unchanged == len(rows) - len(INVALID_ROWS)
    assert await snapshot(db, account.account_id) == before


async def test_json_lines_detected_by_content_with_malformed_lines_reported(
    db: Database, tmp_path: Path
) -> None:
    account = await new_account(db)
    path = tmp_path / "leads.txt"  # the extension says nothing
    path.write_text(
        json.dumps({"email": "a@example.com", "firstName": "A", "eventId": None}) + "\n"
        "\n"
        "{not json\n"
        "[1, 2]\n" + json.dumps({"phoneNumber": "+15550001111"}) + "\n"
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (2, 2)
    report = read_report(tmp_path / "leads.txt.errors.csv")
    assert [(r["row"], r["field"], r["message"]) for r in report] == [
        ("3", "(row)", "Malformed JSON"),
        ("4", "(row)", "Expected object, received array"),
    ]
    assert report[0]["original"] == "{not json"


async def test_an_integer_cell_too_long_for_python_fails_its_row_alone(
    db: Database, tmp_path: Path
) -> None:
    """int() refuses over 4,300 digits: such an eventId stopped the whole import."""
    account = await new_account(db)
    path = tmp_path / "ids.csv"
    huge = "9" * 4301
    write_csv(
        path,
        [
            {"Email": "a@example.com", "eventId": huge},
            {"Email": "b@example.com", "eventId": "0" * 5000},
            {"Email": "c@example.com", "eventId": "0" * 5000 + "12345678901234567890123"},
            {"Email": "d@example.com", "eventId": ""},
        ],
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 3)
    report = read_report(tmp_path / "ids.csv.errors.csv")
    too_large = "Number must be less than or equal to 2147483647"
    assert [(r["row"], r["field"], r["message"]) for r in report] == [
        ("2", "eventId", too_large),
        ("3", "eventId", "Number must be greater than or equal to 1"),
        ("4", "eventId", too_large),
    ]


async def test_clean_run_leaves_no_error_report(db: Database, tmp_path: Path) -> None:
    account = await new_account(db)
    path = tmp_path / "ok.csv"
    write_csv(path, [{"Email": "x@example.com"}])
    (tmp_path / "ok.csv.errors.csv").write_text("stale\n")
    summary = await import_file(db, path, account.name)
    assert summary.created == 1 and summary.report is None
    assert not (tmp_path / "ok.csv.errors.csv").exists()


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
async def test_export_then_import_into_a_new_account_reproduces_every_contact(
    db: Database, tmp_path: Path, file_format: str
) -> None:
    source = await new_account(db)
    await create(
        db,
        source,
        {
            "email": "Jane@Example.com",
            "firstName": 'Jane, "JD"',
            "lastName": "Doe\nSecond line",
            "phoneNumber": "+15551234567",
            "status": "DISQUALIFIED",
            "tag": "vip",
            "joinedTime": "2024-02-29T23:59:59.123Z",
            "utm": "utm_source=google&utm_medium=cpc&ref=partner&gclid=abc",
            "country": "US",
            "timeZone": "America/New_York",
            "ipAddress": "192.168.1.1",
            "referrerUrl": "https://example.com/signup?utm_term=shoes",
        },
    )
    # A later touch: last-touch differs from first-touch now.
    await create(db, source, {"email": "jane@example.com", "utm": "utm_source=bing&ref=x"})
    # The secondary email and phone only PUT sets (the contact object does not show them).
    await put(
        db,
        source,
        {"email": "jane@example.com", "secondary_email": "jd@alt.example",
         "secondary_phoneNumber": "+15557654321"},
    )  # fmt: skip
    await create(db, source, {"phoneNumber": "+15550000001"})
    await create(db, source, {"email": "plain@example.com", "tag": "other"})
    # A bare CR in a cell: once written unquoted to CSV, and read back as two rows.
    await create(db, source, {"email": "cr@example.com", "firstName": "a\rb", "lastName": "c\r\nd"})
    out = io.StringIO()
    exported = await export_contacts(db, source.name, out, file_format)  # type: ignore[arg-type]
    assert exported == 4
    path = tmp_path / f"export.{file_format}"
    path.write_text(out.getvalue())

    target = await new_account(db, "target", "t@target.test")
    summary = await import_file(db, path, target.name)
    assert (summary.created, summary.failed) == (4, 0)

    original = await comparable(db, source.account_id)
    assert await comparable(db, target.account_id) == original
    jane = next(c for c in original if c["email"] == "jane@example.com")
    assert (jane["secondary_email"], jane["secondary_phone_number"]) == (
        "jd@alt.example",
        "+15557654321",
    )
    assert jane["tracking"]["first_utm_source"] == "google"
    assert jane["tracking"]["utm_source"] == "bing"
    assert jane["tracking"]["utmKey_1"] == "ref" and jane["tracking"]["utmValue_1"] == "x"

    # Importing the export back into its own account changes nothing.
    before = await snapshot(db, source.account_id)
    back = await import_file(db, path, source.name)
    assert (back.created, back.updated, back.unchanged) == (0, 0, 4)
    assert await snapshot(db, source.account_id) == before


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
async def test_an_empty_accounts_export_imports_as_nothing(
    db: Database, tmp_path: Path, file_format: str
) -> None:
    """JSON Lines of no contacts is an empty file, which the import once refused
    ("unrecognised format"), so a nightly export -> import stopped on a new account."""
    source = await new_account(db)
    out = io.StringIO()
    assert await export_contacts(db, source.name, out, file_format) == 0  # type: ignore[arg-type]
    path = tmp_path / f"export.{file_format}"
    path.write_text(out.getvalue())
    summary = await import_file(db, path, source.name)
    assert (summary.line(), summary.report) == ("created 0, updated 0, failed 0, unchanged 0", None)
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"\xef\xbb\xbf\r\n  \n")  # a BOM and blank lines: no rows either
    assert (await import_file(db, blank, source.name)).line().startswith("created 0,")


async def test_contacts_on_many_rows_each_merge_when_their_rows_wait_on_disk(
    db: Database, tmp_path: Path
) -> None:
    """More repeated rows than stay in memory (contacts/import_deferred.py): each contact is
    still its rows merged in file order, and a re-run changes nothing."""
    account = await new_account(db)
    contacts = import_deferred.FLUSH_ROWS + 200
    path = tmp_path / "twice.jsonl"
    first = [
        {"email": f"l{n}@x.test", "lastName": "One", "utm": "utm_source=a"} for n in range(contacts)
    ]
    later = [
        {"email": f"L{n}@x.test", "lastName": "Two", "utm": "utm_source=b"} for n in range(contacts)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in first + later))

    summary = await import_file(db, path, account.name, batch_size=500)

    assert (summary.created, summary.updated, summary.failed) == (contacts, contacts, 0)
    stored = await snapshot(db, account.account_id)
    assert len(stored) == contacts
    assert {(c["email"][0], c["last_name"]) for c in stored} == {("L", "Two")}
    assert {json.dumps(c["tracking"], sort_keys=True) for c in stored} == {
        json.dumps({"first_utm_source": "a", "utm_source": "b"}, sort_keys=True)
    }
    again = await import_file(db, path, account.name, batch_size=500)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2 * contacts)
