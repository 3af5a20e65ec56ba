"""The vendor page's field rules, to the letter: each with a value just inside and just outside."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.storage.engine import Database
from tests.conftest import make_settings
from tests.factories import AccountFixture, count_contacts, new_account

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def account(db: Database) -> AccountFixture:
    return await new_account(db)


async def create(client: Client, account: AccountFixture, body: Any) -> Any:
    return await client.post("/v1/contacts", json=body, headers=account.headers)


def field_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    errors: dict[str, list[str]] = response.json()["message"]["details"]["fieldErrors"]
    return errors


LOCAL_64 = "a" * 64
# (field, accepted value, rejected value, expected message for the rejected one)
LENGTH_RULES = [
    ("firstName", "a" * 25, "a" * 26, "String must contain at most 25 character(s)"),
    ("lastName", "b" * 25, "b" * 26, "String must contain at most 25 character(s)"),
    ("tag", "t" * 100, "t" * 101, "String must contain at most 100 character(s)"),
    ("utm", "u=" + "u" * 998, "u=" + "u" * 999, "String must contain at most 1000 character(s)"),
    ("country", "US", "USA", "String must contain at most 2 character(s)"),
    ("timeZone", "z" * 50, "z" * 51, "String must contain at most 50 character(s)"),
    ("ipAddress", "1" * 45, "1" * 46, "String must contain at most 45 character(s)"),
    (
        "referrerUrl",
        "https://e.com/" + "p" * 486,
        "https://e.com/" + "p" * 487,
        "String must contain at most 500 character(s)",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("field", "inside", "outside", "message"), LENGTH_RULES)
async def test_max_lengths(
    client: Client, account: AccountFixture, field: str, inside: str, outside: str, message: str
) -> None:
    ok = await create(client, account, {"phoneNumber": "+1555", field: inside})
    assert ok.status_code == 201, ok.text
    bad = await create(client, account, {"phoneNumber": "+1555", field: outside})
    assert field_errors(bad) == {field: [message]}


async def test_event_name_max_length(client: Client, account: AccountFixture) -> None:
    # 255 characters passes the length rule (and then names no event); 256 does not.
    inside = await create(client, account, {"phoneNumber": "1", "eventName": "e" * 255})
    assert field_errors(inside) == {"eventName": ["Event not found"]}
    outside = await create(client, account, {"phoneNumber": "1", "eventName": "e" * 256})
    assert field_errors(outside) == {"eventName": ["String must contain at most 255 character(s)"]}


async def test_lengths_count_utf16_code_units_as_javascript_does(
    client: Client, account: AccountFixture
) -> None:
    assert (
        await create(client, account, {"phoneNumber": "1", "firstName": "é" * 25})
    ).status_code == 201
    # 13 emoji are 26 UTF-16 code units: one too many for a 25-character name.
    emoji = await create(client, account, {"phoneNumber": "1", "firstName": "😀" * 13})
    assert field_errors(emoji) == {"firstName": ["String must contain at most 25 character(s)"]}


VALID_EMAILS = [
    "jane.doe@example.com",
    "o'brien+tag@mail.example.co.uk",
    "a_b-c@sub-domain.example.io",
    "x@a1.bc",
    f"{LOCAL_64}@{'d' * 180}.com",
]
INVALID_EMAILS = [
    ".jane@example.com",  # leading dot
    "jane..doe@example.com",  # two dots in a row
    "jane.@example.com",  # the character before @ cannot be a dot
    "jane@example.c",  # top-level domain of one letter
    "jane@-example.com",  # a label cannot start with a hyphen
    "jane@example",  # no dot in the domain
    "jane@exa_mple.com",
    "jane doe@example.com",
    "jané@example.com",  # non-ASCII local part
    "jane@example.com\n",  # a trailing newline is not the end of the string
    "jane@example.com1",
]


@pytest.mark.parametrize("email", VALID_EMAILS)
async def test_email_pattern_accepts(client: Client, account: AccountFixture, email: str) -> None:
    response = await create(client, account, {"email": email})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["contact"]["email"] == email


@pytest.mark.parametrize("email", INVALID_EMAILS)
async def test_email_pattern_rejects(client: Client, account: AccountFixture, email: str) -> None:
    response = await create(client, account, {"email": email})
    assert field_errors(response) == {"email": ["Invalid email format"]}


async def test_email_max_length(client: Client, account: AccountFixture) -> None:
    at_limit = "a@" + "d" * 249 + ".com"
    assert len(at_limit) == 255
    assert (await create(client, account, {"email": at_limit})).status_code == 201
    over = "a@" + "d" * 250 + ".com"
    assert field_errors(await create(client, account, {"email": over})) == {
        "email": ["String must contain at most 255 character(s)"]
    }


@pytest.mark.parametrize("phone", ["+15551234567", "15551234567", "0", "+" + "1" * 19])
async def test_phone_pattern_accepts(client: Client, account: AccountFixture, phone: str) -> None:
    assert (await create(client, account, {"phoneNumber": phone})).status_code == 201


@pytest.mark.parametrize(
    ("phone", "messages"),
    [
        ("+1 555 123", ["Invalid phone number format"]),
        ("555-1234", ["Invalid phone number format"]),
        ("++15551234", ["Invalid phone number format"]),
        ("+", ["Invalid phone number format"]),
        ("١٢٣٤", ["Invalid phone number format"]),  # Arabic-Indic digits are not \d in JS
        ("1" * 21, ["String must contain at most 20 character(s)"]),
        ("+" + "1" * 20, ["String must contain at most 20 character(s)"]),
    ],
)
async def test_phone_pattern_rejects(
    client: Client, account: AccountFixture, phone: str, messages: list[str]
) -> None:
    response = await create(client, account, {"phoneNumber": phone})
    assert field_errors(response) == {"phoneNumber": messages}


@pytest.mark.parametrize("status", ["POTENTIAL", "QUALIFIED", "DISQUALIFIED"])
async def test_status_enum_accepts(client: Client, account: AccountFixture, status: str) -> None:
    response = await create(client, account, {"phoneNumber": "1", "status": status})
    assert response.json()["data"]["contact"]["status"] == status


@pytest.mark.parametrize("status", ["potential", "BOOKED", "QUALIFIED "])
async def test_status_enum_rejects(client: Client, account: AccountFixture, status: str) -> None:
    response = await create(client, account, {"phoneNumber": "1", "status": status})
    assert field_errors(response) == {
        "status": [
            "Invalid enum value. Expected 'POTENTIAL' | 'QUALIFIED' | 'DISQUALIFIED', "
            f"received '{status}'"
        ]
    }


@pytest.mark.parametrize(
    ("joined", "shown"),
    [
        ("2024-01-15T10:00:00.000Z", "2024-01-15T10:00:00.000Z"),
        ("2024-01-15T10:00Z", "2024-01-15T10:00:00.000Z"),  # seconds are optional
        ("2024-01-15T10:00:59Z", "2024-01-15T10:00:59.000Z"),
        ("2024-01-15T23:59:59.123456789Z", "2024-01-15T23:59:59.123Z"),  # any fraction
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"),  # leap year
        ("2000-02-29T00:00Z", "2000-02-29T00:00:00.000Z"),  # divisible by 400
        ("2023-02-28T00:00Z", "2023-02-28T00:00:00.000Z"),
        ("2024-04-30T00:00Z", "2024-04-30T00:00:00.000Z"),
        ("2024-12-31T00:00Z", "2024-12-31T00:00:00.000Z"),
        ("0999-01-01T00:00Z", "0999-01-01T00:00:00.000Z"),  # four digits below year 1000
        ("0001-01-01T00:00Z", "0001-01-01T00:00:00.000Z"),
    ],
)
async def test_joined_time_accepts(
    client: Client, account: AccountFixture, joined: str, shown: str
) -> None:
    response = await create(client, account, {"phoneNumber": "1", "joinedTime": joined})
    assert response.status_code == 201, response.text
    assert response.json()["data"]["contact"]["joinedTime"] == shown


@pytest.mark.parametrize(
    "joined",
    [
        "2023-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",  # divisible by 100, not by 400
        "2024-02-30T00:00:00Z",
        "2024-04-31T00:00:00Z",  # April has 30 days
        "2024-13-01T00:00:00Z",
        "2024-01-15T24:00:00Z",
        "2024-01-15T10:60Z",
        "2024-01-15T10:00:00+00:00",  # UTC Z only, no offsets
        "2024-01-15T10:00:00",  # no zone
        "2024-01-15T10Z",  # minutes are required
        "2024-01-15 10:00:00Z",
        "2024-01-15",
        "2024-01-15T10:00:00.Z",
        "2024-01-15T10:00:00Z\n",
        "0000-01-01T00:00Z",  # [choice] matches the vendor pattern; year 0 is no date
        "0000-02-29T00:00Z",  # the pattern's leap-year branch admits it too
    ],
)
async def test_joined_time_rejects(client: Client, account: AccountFixture, joined: str) -> None:
    response = await create(client, account, {"phoneNumber": "1", "joinedTime": joined})
    assert field_errors(response) == {"joinedTime": ["Invalid datetime"]}


@pytest.mark.parametrize(
    "url", ["https://example.com/signup", "http://x.y/?utm_source=a", "android-app://com.x/y"]
)
async def test_referrer_url_accepts_absolute_uris(
    client: Client, account: AccountFixture, url: str
) -> None:
    assert (
        await create(client, account, {"phoneNumber": "1", "referrerUrl": url})
    ).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "example.com/signup", "/signup", "https://example.com/a b", "https:",
        # JavaScript's whitespace, as the published pattern's \S reads it
        "https://x.com/a\u00a0b", "https://x.com/a\u2028b", "https://x.com/a\u3000b",
        "https://x.com/a\ufeffb",
        # no URL that can be taken apart: once a 500 when attribution read its query
        "http://[::1", "http://[::1/p?utm_source=x", "http://]x", "http://x]/a",
        "http://[x]/?utm_source=a", "http://\u2100.com/?utm_source=a",
    ],
)  # fmt: skip
async def test_referrer_url_rejects_non_uris(
    client: Client, account: AccountFixture, url: str
) -> None:
    response = await create(client, account, {"phoneNumber": "1", "referrerUrl": url})
    assert field_errors(response) == {"referrerUrl": ["Invalid url"]}


async def test_event_id_must_be_a_positive_integer(client: Client, account: AccountFixture) -> None:
    cases = {
        "7": "Expected number, received string",
        0: "Number must be greater than or equal to 1",
        1.5: "Expected integer, received float",
        True: "Expected number, received boolean",
    }
    for value, message in cases.items():
        response = await create(client, account, {"phoneNumber": "1", "eventId": value})
        assert field_errors(response) == {"eventId": [message]}, value


async def test_wrong_types_are_reported_per_field(client: Client, account: AccountFixture) -> None:
    response = await create(
        client,
        account,
        {"email": 42, "firstName": ["Jane"], "lastName": {"x": 1}, "status": 1, "tag": False},
    )
    assert field_errors(response) == {
        "firstName": ["Expected string, received array"],
        "lastName": ["Expected string, received object"],
        "email": ["Expected string, received number"],
        "status": ["Expected string, received number"],
        "tag": ["Expected string, received boolean"],
    }


async def test_every_failing_field_is_listed_with_endpoint_and_method(
    client: Client, account: AccountFixture, db: Database
) -> None:
    response = await create(
        client,
        account,
        {
            "email": "not-an-email",
            "phoneNumber": "abc",
            "firstName": "x" * 30,
            "status": "NOPE",
            "joinedTime": "yesterday",
            "country": "USA",
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["message"]["status"] == 400
    assert body["message"]["endpoint"] == "/v1/contacts"
    assert body["message"]["method"] == "POST"
    assert body["message"]["details"]["formErrors"] == []
    assert set(body["message"]["details"]["fieldErrors"]) == {
        "email", "phoneNumber", "firstName", "status", "joinedTime", "country",
    }  # fmt: skip
    assert await count_contacts(db) == 0


NEITHER = "Either email or phoneNumber is required"


@pytest.mark.parametrize(
    ("raw", "form_error"),
    [
        (b'{"email": "a@b.co"', "Malformed JSON in request body"),
        (b"[" * 5000, "Malformed JSON in request body"),  # too deep: RecursionError
        (b'{"a":' * 5000, "Malformed JSON in request body"),
        (b"[" * 5000 + b"]" * 5000, "Malformed JSON in request body"),
        (b"", "Malformed JSON in request body"),
        # bytes inside a string that are not UTF-8: once a 500 (UnicodeDecodeError)
        (b'{"phoneNumber": "1", "firstName": "\xff\xfe"}', "Malformed JSON in request body"),
        (b'{"phoneNumber": "1", "firstName": "\xed\xa0\x80"}', "Malformed JSON in request body"),
        (b"\xef\xbb\xbf\xef\xbb\xbf{}", "Malformed JSON in request body"),  # one mark only
        (b"\xef\xbb\xbf" + b"[" * 5000, "Malformed JSON in request body"),
        (b"\xef\xbb\xbf", "Malformed JSON in request body"),
        (b"\xef\xbb\xbf[]", "Expected object, received array"),
        (b'[{"email": "a@b.co"}]', "Expected object, received array"),
        (b'"a@b.co"', "Expected object, received string"),
        (b"null", "Expected object, received null"),
        (b"{}", NEITHER),
        (b'{"firstName": "J", "email": null, "phoneNumber": ""}', NEITHER),
    ],
)  # fmt: skip
async def test_form_errors(
    client: Client, account: AccountFixture, raw: bytes, form_error: str
) -> None:
    response = await client.post(
        "/v1/contacts",
        content=raw,
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"]["details"] == {"formErrors": [form_error], "fieldErrors": {}}


async def test_a_utf8_byte_order_mark_before_the_body_is_ignored(
    client: Client, db: Database, account: AccountFixture
) -> None:
    """As Node's body parsers (and RFC 8259 8.1) do: a body saved by a Windows editor and
    sent with `curl -d @lead.json` creates the contact."""
    response = await client.post(
        "/v1/contacts",
        content=b"\xef\xbb\xbf" + b'{"email": "bom@example.com", "firstName": "B\xc3\xb6m"}',
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201
    contact = response.json()["data"]["contact"]
    assert (contact["email"], contact["firstName"]) == ("bom@example.com", "B\u00f6m")
    assert await count_contacts(db) == 1


async def test_body_over_one_mebibyte_is_413(client: Client, account: AccountFixture) -> None:
    padding = "x" * (1024 * 1024)
    response = await client.post(
        "/v1/contacts",
        content=f'{{"email": "a@b.co", "pad": "{padding}"}}'.encode(),
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request body too large (limit 1 MiB)"}


async def test_a_delete_or_get_with_a_body_over_the_limit_is_413_and_does_nothing(
    client: Client, db: Database, account: AccountFixture
) -> None:
    """Routes that never read a body carried a 1.1 MB DELETE out and answered 200 (and 413
    with an Idempotency-Key): the limit holds for every method (found by a reviewer)."""
    created = await client.post(
        "/v1/contacts", json={"email": "keep@x.test"}, headers=account.headers
    )
    contact_id = created.json()["data"]["contact"]["id"]
    oversized = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    headers = {**account.headers, "Content-Type": "application/json"}
    for method, url in (
        ("DELETE", f"/v1/contacts?id={contact_id}"),
        ("GET", "/v1/contacts"),
        ("GET", f"/v1/contacts/detail?contactId={contact_id}"),
    ):
        response = await client.request(method, url, content=oversized, headers=headers)
        assert response.status_code == 413, (method, url)
        assert response.json() == {"message": "Request body too large (limit 1 MiB)"}
    kept = await client.get(f"/v1/contacts/detail?contactId={contact_id}", headers=account.headers)
    assert kept.status_code == 200
    small = await client.request(
        "DELETE", f"/v1/contacts?id={contact_id}", content=b"{}", headers=headers
    )
    assert small.status_code == 200, small.text
    gone = await client.get(f"/v1/contacts/detail?contactId={contact_id}", headers=account.headers)
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("limit", "shown"), [(2000, "2,000 bytes"), (64 * 1024, "64 KiB"), (3 << 20, "3 MiB")]
)
async def test_the_413_names_the_limit_in_force(
    database_url: str, account: AccountFixture, limit: int, shown: str
) -> None:
    app = create_app(make_settings(database_url, max_body_bytes=limit))
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/v1/contacts",
            content=b'{"email": "a@b.co", "pad": "' + b"x" * limit + b'"}',
            headers={**account.headers, "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json() == {"message": f"Request body too large (limit {shown})"}


async def test_body_just_under_the_limit_is_read(client: Client, account: AccountFixture) -> None:
    head = b'{"email": "big@b.co", "pad": "'
    padding = b"x" * (1024 * 1024 - len(head) - 2)
    response = await client.post(
        "/v1/contacts",
        content=head + padding + b'"}',
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_non_json_content_type_is_415(
    client: Client, account: AccountFixture, content_type: str | None
) -> None:
    headers = dict(account.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post("/v1/contacts", content=b'{"email":"a@b.co"}', headers=headers)
    assert response.status_code == 415
    assert response.json() == {"message": "Content-Type must be application/json"}


@pytest.mark.parametrize("path", ["/v1/contacts", "/v1/contacts/bulk"])
async def test_a_compressed_body_is_415_naming_the_encoding(
    client: Client, account: AccountFixture, db: Database, path: str
) -> None:
    """It was a 400 "Malformed JSON" of a body the client knew to be valid JSON."""
    body = b'{"email":"gz@b.co"}' if path == "/v1/contacts" else b'[{"email":"gz@b.co"}]'
    headers = {**account.headers, "Content-Type": "application/json"}
    response = await client.post(
        path, content=gzip.compress(body), headers={**headers, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 415
    assert response.json() == {
        "message": "Content-Encoding gzip is not supported: send the body uncompressed"
    }
    assert await count_contacts(db, account.account_id) == 0
    # Malformed JSON stays a 400, and an encoding that changes nothing is no reason to refuse.
    broken = await client.post(
        path, content=b"{", headers={**headers, "Content-Encoding": "identity"}
    )
    assert broken.status_code == 400
    plain = await client.post(
        path, content=body, headers={**headers, "Content-Encoding": "identity"}
    )
    assert plain.status_code == (201 if path == "/v1/contacts" else 200), plain.text


async def test_json_with_charset_is_accepted(client: Client, account: AccountFixture) -> None:
    response = await client.post(
        "/v1/contacts",
        content=b'{"email":"a@b.co"}',
        headers={**account.headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201
