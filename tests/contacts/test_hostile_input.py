"""Hostile input is a 400 (or a row in the import's error report), never a 5xx or a traceback:
JSON nested too deep to decode, year 0000, control characters in UTM values, odd digits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contacts_api.bulk_jobs import import_file
from contacts_api.contacts import bulk_files, bulk_rows
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table, tag_table
from tests.contacts.helpers import Client, stored_contact
from tests.contacts.test_bulk_import import read_report
from tests.factories import AccountFixture, count_contacts, new_account

MALFORMED = {"formErrors": ["Malformed JSON in request body"], "fieldErrors": {}}
DEEP = [b"[" * 5000, b'{"a":' * 5000, b'{"contacts":' + b"[" * 5000]


@pytest.fixture
async def account(db: Database) -> AccountFixture:
    return await new_account(db)


def post_raw(client: Client, account: AccountFixture, path: str, raw: bytes) -> Any:
    headers = {**account.headers, "Content-Type": "application/json"}
    return client.post(path, content=raw, headers=headers)


# Bytes inside a JSON string that are not UTF-8: msgspec raises UnicodeDecodeError there,
# not DecodeError, once a 500 on every route with a JSON body.
NOT_UTF8 = b'"\xff\xfe"'


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/v1/contacts", b'{"phoneNumber": "1", "firstName": ' + NOT_UTF8 + b"}"),
        ("PUT", "/v1/contacts", b'{"id": 1, "firstName": ' + NOT_UTF8 + b"}"),
        ("POST", "/v1/contacts/notes", b'{"contactId": 1, "note": ' + NOT_UTF8 + b"}"),
        ("POST", "/v1/contacts/bulk", b'{"contacts": [{"phoneNumber": ' + NOT_UTF8 + b"}]}"),
        ("POST", "/v1/webhooks", b'{"url": ' + NOT_UTF8 + b', "events": ["newContactCreated"]}'),
    ],
)
@pytest.mark.parametrize("idempotent", [False, True])
async def test_strings_that_are_not_utf8_are_malformed_json(
    client: Client, account: AccountFixture, method: str, path: str, raw: bytes, idempotent: bool
) -> None:
    headers = {**account.headers, "Content-Type": "application/json"}
    if idempotent:
        headers["Idempotency-Key"] = f"not-utf8-{method}-{path}"
    response = await client.request(method, path, content=raw, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["message"]["details"] == MALFORMED


@pytest.mark.parametrize("path", ["/v1/contacts", "/v1/contacts/bulk"])
async def test_referrer_url_that_cannot_be_split_is_a_400_on_the_field(
    client: Client, account: AccountFixture, db: Database, path: str
) -> None:
    item = {"phoneNumber": "5551", "referrerUrl": "http://[::1/p?utm_source=x"}
    body = {"contacts": [item]} if path.endswith("bulk") else item
    response = await post_raw(client, account, path, json.dumps(body).encode())
    if path.endswith("bulk"):  # the item fails alone, with the create's error
        assert response.status_code == 200, response.text
        [result] = response.json()["data"]["results"]
        assert result["status"] == 400
        assert result["error"]["message"]["details"]["fieldErrors"] == {
            "referrerUrl": ["Invalid url"]
        }
    else:
        assert response.status_code == 400, response.text
        assert response.json()["message"]["details"]["fieldErrors"] == {
            "referrerUrl": ["Invalid url"]
        }
    assert await count_contacts(db) == 0


@pytest.mark.parametrize("raw", DEEP)
async def test_bulk_deeply_nested_json_is_malformed_json(
    client: Client, account: AccountFixture, raw: bytes
) -> None:
    response = await post_raw(client, account, "/v1/contacts/bulk", raw)
    assert response.status_code == 400, response.text
    assert response.json()["message"]["details"] == MALFORMED


async def test_bulk_still_refuses_non_json_content_type(
    client: Client, account: AccountFixture
) -> None:
    headers = {**account.headers, "Content-Type": "text/plain"}
    response = await client.post("/v1/contacts/bulk", content=b"[]", headers=headers)
    assert response.status_code == 415
    assert response.json() == {"message": "Content-Type must be application/json"}


async def test_bulk_item_with_year_zero_fails_alone(
    client: Client, db: Database, account: AccountFixture
) -> None:
    items = [
        {"email": "zero@example.com", "joinedTime": "0000-01-01T00:00Z"},
        {"email": "leap@example.com", "joinedTime": "0000-02-29T00:00Z"},
        {"email": "ok@example.com", "joinedTime": "0999-12-31T23:59Z"},
    ]
    response = await client.post(
        "/v1/contacts/bulk", json={"contacts": items}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]["results"]
    assert [r["status"] for r in results] == [400, 400, 201]
    for result in results[:2]:
        assert result["error"]["message"]["details"]["fieldErrors"] == {
            "joinedTime": ["Invalid datetime"]
        }
    assert results[2]["contact"]["joinedTime"] == "0999-12-31T23:59:00.000Z"
    assert await count_contacts(db, account.account_id) == 1


async def test_year_below_1000_reads_back_with_four_digits(
    client: Client, account: AccountFixture
) -> None:
    created = await client.post(
        "/v1/contacts",
        json={"email": "old@example.com", "joinedTime": "0999-01-01T00:00Z"},
        headers=account.headers,
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["data"]["contact"]["id"]
    read = await client.get(
        "/v1/contacts/detail", params={"contactId": contact_id}, headers=account.headers
    )
    assert read.status_code == 200, read.text
    assert read.json()["data"]["joinedTime"] == "0999-01-01T00:00:00.000Z"


async def test_import_reports_deep_json_and_year_zero_rows(
    db: Database, account: AccountFixture, tmp_path: Path
) -> None:
    deep = "[" * 5000
    deep_object = '{"email": "deep@example.com", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    path = tmp_path / "leads.jsonl"
    path.write_text(
        json.dumps({"email": "ok@example.com"})
        + "\n"
        + "{"
        + deep
        + "\n"
        + deep_object
        + "\n"
        + json.dumps({"email": "zero@example.com", "joinedTime": "0000-02-29T00:00Z"})
        + "\n"
        + json.dumps({"email": "t@example.com", "tracking": "[" * 5000})
        + "\n"
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 4)
    report = read_report(tmp_path / "leads.jsonl.errors.csv")
    assert [(r["row"], r["field"], r["message"]) for r in report] == [
        ("2", "(row)", "Malformed JSON"),
        ("3", "(row)", "Malformed JSON"),
        ("4", "joinedTime", "Invalid datetime"),
        ("5", "tracking", "Expected a JSON object"),
    ]


async def test_import_tracking_with_a_lone_surrogate_fails_its_row_alone(
    db: Database, account: AccountFixture, tmp_path: Path
) -> None:
    """json.loads let "\\ud800" through and the import stopped half-way, exit 1."""
    path = tmp_path / "leads.csv"
    path.write_text(
        'email,tracking\na@example.com,"{""utm_source"":""\\ud800""}"\nb@example.com,\n',
        encoding="utf-8",
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 1)
    report = read_report(tmp_path / "leads.csv.errors.csv")
    assert [(r["row"], r["field"]) for r in report] == [("2", "tracking")]


async def test_import_csv_event_id_of_unicode_digits_is_a_validation_error(
    db: Database, account: AccountFixture, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email,eventId\nsup@example.com,\u00b2\nok@example.com,\n", encoding="utf-8")
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 1)
    report = read_report(tmp_path / "leads.csv.errors.csv")
    assert [(r["row"], r["field"], r["message"]) for r in report] == [
        ("2", "eventId", "Expected number, received string")
    ]


UTM_WITH_CONTROLS = "utm_source=%00x&utm_medium=a%0Ab&ke%00y=v&utm_campaign=fine&%1Fk=v"
CLEAN_TRACKING = {"utm_campaign": "fine", "first_utm_campaign": "fine"}


async def test_utm_pairs_with_control_characters_are_dropped(
    client: Client, db: Database, account: AccountFixture
) -> None:
    response = await client.post(
        "/v1/contacts",
        json={
            "email": "nul@example.com",
            "utm": UTM_WITH_CONTROLS,
            "referrerUrl": "https://example.com/?utm_term=%00&utm_content=%7F",
        },
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["contact"]["tracking"] == CLEAN_TRACKING
    stored = await stored_contact(db, response.json()["data"]["contact"]["id"])
    assert stored.tracking == CLEAN_TRACKING

    bulk = await client.post(
        "/v1/contacts/bulk",
        json=[{"email": "nul2@example.com", "utm": UTM_WITH_CONTROLS}],
        headers=account.headers,
    )
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["data"]["results"][0]["contact"]["tracking"] == CLEAN_TRACKING


async def test_imported_tracking_with_control_characters_is_dropped(
    db: Database, account: AccountFixture, tmp_path: Path
) -> None:
    tracking = {"utm_source": "a\u0000b", "first_utm_source": "x", "utm_medium": "cpc"}
    path = tmp_path / "leads.jsonl"
    path.write_text(json.dumps({"email": "t@example.com", "tracking": tracking}) + "\n")
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 0)
    async with db.read() as conn:
        row = (await conn.execute(sa.select(contact_table.c.tracking))).one()
    assert not any("\x00" in k + v for k, v in row.tracking.items())
    assert row.tracking["utm_medium"] == "cpc"


async def test_bulk_item_with_unknown_event_creates_no_tag(
    client: Client, db: Database, account: AccountFixture
) -> None:
    response = await client.post(
        "/v1/contacts/bulk",
        json=[
            {"email": "a@example.com", "tag": "orphan", "eventName": "No Such Event"},
            {"email": "b@example.com", "tag": "kept"},
        ],
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["data"]["results"]] == [400, 201]
    async with db.read() as conn:
        names = (
            await conn.execute(
                sa.select(tag_table.c.name).where(tag_table.c.account_id == account.account_id)
            )
        ).scalars()
        assert sorted(names) == ["kept"]


@pytest.mark.parametrize("utm_column", [False, True], ids=["by-columns", "row-by-row"])
async def test_import_csv_row_with_cells_past_the_header_fails_alone(
    db: Database, account: AccountFixture, tmp_path: Path, utm_column: bool
) -> None:
    """An unquoted comma in a value shifted the cells after it, and the row was imported
    with the first ones: now it is reported, whole. Empty cells past the header (a trailing
    delimiter) are fine."""
    extra = ",utm_source" if utm_column else ""
    fill = ",x" if utm_column else ""
    path = tmp_path / "leads.csv"
    path.write_text(
        f"email,firstName,lastName{extra}\n"
        f"ok@example.com,Ann,Lee{fill}\n"
        f"shift@example.com,Lee, Ann,Smith{fill}\n"
        f"trailing@example.com,Bo,Ray{fill},,\n",
        encoding="utf-8",
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (2, 1)
    width = 4 if utm_column else 3
    report = read_report(tmp_path / "leads.csv.errors.csv")
    assert [(r["row"], r["field"], r["message"]) for r in report] == [
        (
            "3",
            "(row)",
            f"The row has {width + 1} cells but the header {width} columns"
            " (is a delimiter inside a value not quoted?)",
        )
    ]
    assert report[0]["original"] == f"shift@example.com,Lee, Ann,Smith{fill}"
    async with db.read() as conn:
        emails = (await conn.execute(sa.select(contact_table.c.email))).scalars().all()
    assert sorted(emails) == ["ok@example.com", "trailing@example.com"]


async def test_import_csv_cell_quoted_over_lines_fails_with_its_fields_messages_alone(
    db: Database, account: AccountFixture, tmp_path: Path
) -> None:
    """Its quotes pair up: no hint of a quote left open, the API's messages only."""
    path = tmp_path / "leads.csv"
    path.write_text('email,firstName\r\nbad2,"Jo\nAnn"\r\nok@ex.com,"Jo\nAnn"\r\n')
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 1)
    [failure] = read_report(tmp_path / "leads.csv.errors.csv")
    assert (failure["row"], failure["field"], failure["message"]) == (
        "2",
        "email",
        "Invalid email format",
    )


async def test_import_csv_quote_left_open_names_the_lines_it_swallowed(
    db: Database, account: AccountFixture, tmp_path: Path
) -> None:
    """A quote left open reads the rows after it into one cell, up to the next quote: the
    failing row says which lines it ran over. A valid row whose quoted cell holds a line
    break (a note in an ignored column) is imported as before."""
    path = tmp_path / "leads.csv"
    path.write_text(
        "email,firstName,lastName,notes\n"
        'ok@example.com,Ann,Lee,"two\nlines"\n'
        'open@example.com,Bo,"Ray,\n'
        "lost@example.com,Cy,Day,\n"
        'next@example.com,"Di",Em,\n'
        "after@example.com,Ed,Fox,\n",
        encoding="utf-8",
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (2, 1)
    [failure] = read_report(tmp_path / "leads.csv.errors.csv")
    assert failure["row"] == "4"
    assert failure["message"].startswith(
        "This row runs from line 4 to line 6: is a quote left open?, "
    )
    async with db.read() as conn:
        emails = (await conn.execute(sa.select(contact_table.c.email))).scalars().all()
    assert sorted(emails) == ["after@example.com", "ok@example.com"]


@pytest.mark.parametrize("utm_column", [False, True], ids=["by-columns", "row-by-row"])
@pytest.mark.parametrize(
    ("after", "last_line", "message"),
    [
        ("", 7, "A quote in it is never closed, so it ran on to the end of the file"),
        (
            'next@example.com,Di,Em,"x"y\n',
            8,
            "Its quotes do not pair up: a quoted cell has more text after its closing quote",
        ),
    ],
    ids=["to-the-end", "to-a-later-quote"],
)
async def test_import_csv_quote_left_open_in_an_ignored_column_fails_its_row(
    db: Database,
    account: AccountFixture,
    tmp_path: Path,
    utm_column: bool,
    after: str,
    last_line: int,
    message: str,
) -> None:
    """A quote left open in a column the import ignores read the rows after it into that
    cell, and the row passed: they were lost without a word. Now the row fails, naming the
    lines, and the report holds them (beside a row with too many cells, in the same batch).
    A quoted note over two lines (a space after its closing quote), and a one-line record
    that csv reads leniently, import as before."""
    extra, fill = (",utm_source", ",x") if utm_column else ("", "")
    path = tmp_path / "leads.csv"
    path.write_text(
        f"email,firstName,lastName,notes{extra}\n"
        f'ok@example.com,Ann,Lee,"two\nlines" {fill}\n'
        f'quirk@example.com,"Jo"hn,Lee,{fill}\n'
        f"shift@example.com,Lee, Ann,Smith,{fill},x\n"
        'open@example.com,Bo,Ray,"left open\n'
        "lost@example.com,Cy,Day,\n" + after,
        encoding="utf-8",
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (2, 2)
    [shifted, failure] = read_report(tmp_path / "leads.csv.errors.csv")
    assert shifted["row"] == "5"
    assert (failure["row"], failure["field"]) == ("6", "(row)")  # one field, two messages
    assert failure["message"] == (
        f"This row runs from line 6 to line {last_line}: is a quote left open?, {message}"
    )
    assert "lost@example.com,Cy,Day," in failure["original"]
    async with db.read() as conn:
        rows = await conn.execute(sa.select(contact_table.c.email, contact_table.c.first_name))
        names = {email: first_name for email, first_name in rows}
    assert names == {"ok@example.com": "Ann", "quirk@example.com": "John"}


async def test_import_csv_record_of_too_many_lines_fails_and_its_original_is_cut(
    db: Database, account: AccountFixture, tmp_path: Path
) -> None:
    """A quote left open over a file of line breaks, or a cell of megabytes: the row fails,
    the reader no longer keeps every line of it (30 MiB of line breaks took it to 574 MB),
    and the report holds the cell's start only."""
    path = tmp_path / "leads.csv"
    breaks = "\n" * (bulk_files.MAX_RECORD_LINES + 1)
    path.write_text(
        "email,firstName,notes\n"
        f'long@example.com,Ann,"{breaks}"\n'
        f"big@example.com,{'x' * (bulk_rows.ORIGINAL_CELL_CHARS + 1)},\n"
        "after@example.com,Bo,\n",
        encoding="utf-8",
    )
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 2)
    [long, big] = read_report(tmp_path / "leads.csv.errors.csv")
    last = 2 + bulk_files.MAX_RECORD_LINES + 1
    assert long["message"] == (
        f"This row runs from line 2 to line {last}: is a quote left open?, "
        "A record of over 10,000 lines is no lead's"
    )
    assert long["original"] == f'long@example.com,Ann,"{breaks}"'
    assert big["field"] == "firstName"
    cut = "x" * bulk_rows.ORIGINAL_CELL_CHARS + bulk_rows.CUT
    assert big["original"] == f"big@example.com,{cut},"
