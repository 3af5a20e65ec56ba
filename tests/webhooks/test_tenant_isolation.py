"""Webhook routes called with another account's ids: 404, and nothing read or changed."""

from __future__ import annotations

import sqlalchemy as sa

from contacts_api.storage.engine import Database
from contacts_api.storage.models import (
    webhook_attempt_table,
    webhook_endpoint_table,
    webhook_message_table,
)
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.factories import new_account
from tests.webhooks.conftest import Client, create_contact, deliveries, subscribe
from tests.webhooks.receiver import Receiver

NOT_FOUND = {"message": "Webhook not found"}


async def snapshot(db: Database) -> list[list[object]]:
    tables = (webhook_endpoint_table, webhook_message_table, webhook_attempt_table)
    async with db.read() as conn:
        return [list((await conn.execute(sa.select(t).order_by(t.c.id))).all()) for t in tables]


async def test_another_accounts_webhooks_are_404_everywhere(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    victim = await new_account(db, "victim", "owner@victim.test")
    intruder = await new_account(db, "intruder", "owner@intruder.test")
    webhook = await subscribe(client, victim, receiver.url)
    await create_contact(client, victim, email="secret@victim.test")
    assert await dispatcher.run_once() == 1
    [message_id] = receiver.ids
    before = await snapshot(db)
    h = intruder.headers

    rotate = await client.post("/v1/webhooks/rotate-secret", json={"id": webhook["id"]}, headers=h)
    assert (rotate.status_code, rotate.json()) == (404, NOT_FOUND)
    redeliver = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": message_id}, headers=h
    )
    assert (redeliver.status_code, redeliver.json()) == (404, {"message": "Message not found"})
    listing = await client.get(f"/v1/webhooks/deliveries?webhookId={webhook['id']}", headers=h)
    assert (listing.status_code, listing.json()) == (404, NOT_FOUND)
    delete = await client.delete(f"/v1/webhooks?id={webhook['id']}", headers=h)
    assert (delete.status_code, delete.json()) == (404, NOT_FOUND)
    assert (await client.get("/v1/webhooks", headers=h)).json()["data"]["webhooks"] == []
    assert (await deliveries(client, intruder))["count"] == 0

    assert await snapshot(db) == before
    assert await dispatcher.run_once() == 0  # nothing was queued again
    assert receiver.ids == [message_id]
