"""POST and GET /v1/contacts/notes."""

from __future__ import annotations

from typing import Any

from contacts_api.storage.engine import Database
from tests.contacts.helpers import (
    Client,
    create,
    second_user,
    settings,  # noqa: F401  (fixture: no rate limit)
)
from tests.factories import AccountFixture, new_account


async def add_note(client: Client, account: AccountFixture, body: Any) -> Any:
    return await client.post("/v1/contacts/notes", json=body, headers=account.headers)


async def notes(client: Client, account: AccountFixture, **params: Any) -> Any:
    return await client.get("/v1/contacts/notes", params=params, headers=account.headers)


async def test_note_round_trip(client: Client, db: Database) -> None:
    account = await new_account(db)
    colleague = await second_user(db, account, "colleague@acme.test")
    contact = await create(client, account, email="a@x.test")

    first = await add_note(
        client, account, {"contactId": contact["id"], "note": "Called, no answer"}
    )
    second = await add_note(client, colleague, {"contactId": contact["id"], "note": "Booked 🎉"})

    assert first.status_code == 201
    body = first.json()
    assert body["message"] == "Note created" and body["status"] == 201
    note = body["data"]
    assert set(note) == {"id", "contactId", "userId", "note", "createdAt"}
    assert note["contactId"] == contact["id"] and note["userId"] == account.user_id
    assert note["createdAt"].endswith("Z")
    listing = await notes(client, account, contactId=contact["id"])
    assert listing.status_code == 200
    assert listing.json() == {"count": 2, "data": [second.json()["data"], note]}
    assert listing.json()["data"][0]["userId"] == colleague.user_id


async def test_note_paging(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test")
    for i in range(5):
        await add_note(client, account, {"contactId": contact["id"], "note": f"n{i}"})

    page1 = await notes(client, account, contactId=contact["id"], limit=2, page=1)
    past = await notes(client, account, contactId=contact["id"], limit=2, page=3)

    assert [n["note"] for n in page1.json()["data"]] == ["n2", "n1"]
    assert page1.json()["count"] == 5
    assert past.json() == {"count": 5, "data": []}


async def test_note_validation(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test")

    empty = await add_note(client, account, {"contactId": contact["id"], "note": ""})
    too_long = await add_note(client, account, {"contactId": contact["id"], "note": "x" * 10_001})
    longest = await add_note(client, account, {"contactId": contact["id"], "note": "x" * 10_000})
    nothing = await add_note(client, account, {})
    wrong_types = await add_note(client, account, {"contactId": "1", "note": 5})

    assert empty.json()["message"]["details"]["fieldErrors"] == {"note": ["Required"]}
    assert too_long.json()["message"]["details"]["fieldErrors"] == {
        "note": ["String must contain at most 10000 character(s)"]
    }
    assert longest.status_code == 201
    assert nothing.json()["message"]["details"]["fieldErrors"] == {
        "contactId": ["Required"],
        "note": ["Required"],
    }
    assert wrong_types.json()["message"]["details"]["fieldErrors"] == {
        "contactId": ["Expected number, received string"],
        "note": ["Expected string, received number"],
    }
    assert nothing.json()["message"]["method"] == "POST"
    bad_query = await notes(client, account, limit="0")
    assert bad_query.status_code == 400
    assert bad_query.json()["message"]["details"]["fieldErrors"] == {
        "contactId": ["Required"],
        "limit": ["Number must be greater than or equal to 1"],
    }
    assert bad_query.json()["message"]["method"] == "GET"


async def test_notes_of_unknown_contact_are_404(client: Client, db: Database) -> None:
    account = await new_account(db)
    created = await add_note(client, account, {"contactId": 999, "note": "hi"})
    listed = await notes(client, account, contactId=999)
    assert created.status_code == listed.status_code == 404
    assert created.json() == {"message": "Contact not found"}
