"""Every /v1 route, called with another account's ids: zero reads, zero writes (404s)."""

from __future__ import annotations

import sqlalchemy as sa

from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table, note_table, tag_table
from tests.contacts.helpers import (
    Client,
    create,
    settings,  # noqa: F401  (fixture: no rate limit)
    stored_contact,
)
from tests.factories import new_account, new_event


async def snapshot(db: Database) -> tuple[list[object], list[object], list[object]]:
    async with db.read() as conn:
        contacts = list((await conn.execute(sa.select(contact_table).order_by("id"))).all())
        notes = list((await conn.execute(sa.select(note_table).order_by("id"))).all())
        tags = list((await conn.execute(sa.select(tag_table).order_by("id"))).all())
    return contacts, notes, tags


async def test_another_accounts_ids_are_404_everywhere(client: Client, db: Database) -> None:
    victim = await new_account(db, "victim", "owner@victim.test")
    intruder = await new_account(db, "intruder", "owner@intruder.test")
    victim_event = await new_event(db, victim, "Secret Demo", "victim/secret")
    secret = await create(
        client, victim, email="secret@victim.test", firstName="Secret", eventId=victim_event
    )
    note = await client.post(
        "/v1/contacts/notes",
        json={"contactId": secret["id"], "note": "confidential"},
        headers=victim.headers,
    )
    assert note.status_code == 201
    before = await snapshot(db)
    h = intruder.headers
    cid = secret["id"]

    answers = {
        "detail": await client.get("/v1/contacts/detail", params={"contactId": cid}, headers=h),
        "update": await client.put(
            "/v1/contacts", json={"id": cid, "firstName": "Pwned", "tag": "x"}, headers=h
        ),
        "delete": await client.delete("/v1/contacts", params={"id": cid}, headers=h),
        "notes": await client.get("/v1/contacts/notes", params={"contactId": cid}, headers=h),
        "add note": await client.post(
            "/v1/contacts/notes", json={"contactId": cid, "note": "hi"}, headers=h
        ),
    }
    for route, response in answers.items():
        assert response.status_code == 404, route
        assert response.json() == {"message": "Contact not found"}, route
        assert "confidential" not in response.text and "Secret" not in response.text

    listings = [
        await client.get("/v1/contacts", headers=h),
        await client.get("/v1/contacts", params={"userId": victim.user_id}, headers=h),
        await client.get("/v1/contacts", params={"eventIds": str(victim_event)}, headers=h),
        await client.get("/v1/contacts", params={"search": "secret"}, headers=h),
    ]
    for response in listings:
        assert response.json() == {"data": {"count": 0, "contacts": []}}
    events = await client.get("/v1/events", headers=h)
    assert events.json() == {"data": {"count": 0, "events": []}}
    users = await client.get("/v1/users", headers=h)
    assert [u["email"] for u in users.json()["data"]["users"]] == ["owner@intruder.test"]
    # Another account's event cannot be attached, and the victim's email is not matched.
    selector = await client.post(
        "/v1/contacts", json={"email": "secret@victim.test", "eventId": victim_event}, headers=h
    )
    assert selector.status_code == 400
    assert selector.json()["message"]["details"]["fieldErrors"] == {"eventId": ["Event not found"]}

    assert await snapshot(db) == before
    assert (await stored_contact(db, cid)).first_name == "Secret"
