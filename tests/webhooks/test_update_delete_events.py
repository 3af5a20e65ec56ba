"""PUT and DELETE /v1/contacts emit contactDetailChanged and contactDeleted, signed and in order."""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.bulk_jobs import import_file
from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.factories import new_account
from tests.webhooks.conftest import Receiver, create_contact, subscribe
from tests.webhooks.test_delivery import verify

Client = AsyncTestClient[Litestar]
ALL_EVENTS = ("newContactCreated", "contactDetailChanged", "contactDeleted")


async def test_update_and_delete_reach_the_receiver(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url, ALL_EVENTS)
    contact = await create_contact(client, account, email="jane@example.com", firstName="Jane")
    contact_id = contact["id"]

    updated = await client.put(
        "/v1/contacts",
        json={"id": contact_id, "firstName": "Janet", "status": "QUALIFIED"},
        headers=account.headers,
    )
    assert updated.status_code == 200, updated.text
    unchanged = await client.put(
        "/v1/contacts", json={"id": contact_id, "firstName": "Janet"}, headers=account.headers
    )
    assert unchanged.status_code == 200
    deleted = await client.delete(f"/v1/contacts?id={contact_id}", headers=account.headers)
    assert deleted.status_code == 200

    await dispatcher.run_once()
    payloads = [verify(webhook["secret"], r)[0] for r in receiver.requests]
    assert [p["hookType"] for p in payloads] == [
        "Contact created",
        "Contact updated",
        "Contact deleted",
    ]  # the PUT that changed nothing sent nothing
    assert sorted(payloads[1]["updatedAttributes"]) == ["firstName", "status"]
    assert payloads[1]["firstName"] == "Janet"
    assert payloads[2]["updatedAttributes"] == ["deletedAt"]
    assert payloads[2]["deletedAt"] is not None


async def test_a_delete_event_is_not_sent_to_a_subscriber_of_creates_only(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url, ("newContactCreated",))
    contact = await create_contact(client, account, email="solo@example.com")
    contact_id = contact["id"]
    await client.delete(f"/v1/contacts?id={contact_id}", headers=account.headers)
    await dispatcher.run_once()
    assert len(receiver.requests) == 1


async def test_import_with_emit_webhooks_and_the_bulk_endpoint_queue_events(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, tmp_path: Path
) -> None:
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url, ALL_EVENTS)
    leads = tmp_path / "leads.csv"
    leads.write_text("email,first_name\na@example.com,Ann\nb@example.com,Bob\n")
    await import_file(db, leads, account.name, emit_webhooks=True)
    quiet = tmp_path / "quiet.csv"
    quiet.write_text("email\nc@example.com\n")
    await import_file(db, quiet, account.name)  # default: no webhook events
    bulk = await client.post(
        "/v1/contacts/bulk",
        json={"contacts": [{"email": "a@example.com", "firstName": "Annie"}]},
        headers=account.headers,
    )
    assert bulk.status_code == 200, bulk.text

    await dispatcher.run_once()
    payloads = [verify(webhook["secret"], r)[0] for r in receiver.requests]
    assert [(p["hookType"], p["email"]) for p in payloads] == [
        ("Contact created", "a@example.com"),
        ("Contact created", "b@example.com"),
        ("Contact updated", "a@example.com"),
    ]
    assert payloads[2]["updatedAttributes"] == ["firstName"]
