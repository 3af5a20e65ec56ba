"""POST /v1/webhooks/enable: a disabled webhook enabled in place, and the messages it failed
sent after all (`redeliverFailed`), with their own webhook-ids, oldest first."""

from __future__ import annotations

import asyncio
from typing import Any

from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.factories import AccountFixture, new_account
from tests.webhooks.conftest import Client, Clock, create_contact, message_statuses, subscribe
from tests.webhooks.receiver import Receiver, Reply
from tests.webhooks.test_retries import Script


async def enable(
    client: Client, account: AccountFixture, webhook_id: int, **extra: Any
) -> tuple[int, Any]:
    response = await client.post(
        "/v1/webhooks/enable", json={"id": webhook_id, **extra}, headers=account.headers
    )
    return response.status_code, response.json()


async def only_webhook(client: Client, account: AccountFixture) -> dict[str, Any]:
    response = await client.get("/v1/webhooks", headers=account.headers)
    [webhook] = response.json()["data"]["webhooks"]
    return dict(webhook)


async def disabled_by_410(
    client: Client, account: AccountFixture, receiver: Receiver, dispatcher: Dispatcher
) -> dict[str, Any]:
    """A webhook whose receiver answered 410 to the first of two messages: both failed."""
    receiver.respond = Script(Reply(410))
    webhook = await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="first@example.com")
    await create_contact(client, account, email="second@example.com")
    assert await dispatcher.run_once() == 1
    assert (await only_webhook(client, account))["disabledAt"] is not None
    assert await message_statuses(db_of(dispatcher)) == ["failed", "failed"]
    return webhook


def db_of(dispatcher: Dispatcher) -> Database:
    return dispatcher.db


async def test_enabled_with_its_failed_messages_it_gets_them_in_order_then_new_ones(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    account = await new_account(db)
    webhook = await disabled_by_410(client, account, receiver, dispatcher)
    first_id = receiver.ids[0]
    await create_contact(client, account, email="while-disabled@example.com")  # not queued

    status, body = await enable(client, account, webhook["id"], redeliverFailed=True)
    assert status == 200, body
    assert body["data"]["requeued"] == 2
    assert body["data"]["webhook"]["id"] == webhook["id"]
    assert body["data"]["webhook"]["disabledAt"] is None
    assert body["data"]["webhook"]["disabledReason"] is None
    assert "secret" not in body["data"]["webhook"]
    listed = await only_webhook(client, account)
    assert listed["disabledAt"] is None and listed["disabledReason"] is None
    await create_contact(client, account, email="after@example.com")  # queued again

    for _ in range(4):
        await dispatcher.run_once()
        clock.advance(seconds=1)
    emails = [request.json()[0]["email"] for request in receiver.requests[1:]]
    assert emails == ["first@example.com", "second@example.com", "after@example.com"]
    assert receiver.ids[1] == first_id  # the same message, the same webhook-id
    assert await message_statuses(db) == ["delivered", "delivered", "delivered"]


async def test_enabled_without_redelivery_its_failed_messages_stay_failed_until_asked(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    account = await new_account(db)
    webhook = await disabled_by_410(client, account, receiver, dispatcher)
    first_id = receiver.ids[0]
    refused = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": first_id}, headers=account.headers
    )
    assert refused.status_code == 409
    assert refused.json() == {"message": "The webhook is disabled; enable it first"}

    status, body = await enable(client, account, webhook["id"])
    assert status == 200 and body["data"]["requeued"] == 0
    clock.advance(seconds=10)
    assert await dispatcher.run_once() == 0
    assert await message_statuses(db) == ["failed", "failed"]

    queued = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": first_id}, headers=account.headers
    )
    assert queued.status_code == 202
    assert await dispatcher.run_once() == 1
    assert receiver.ids[1:] == [first_id]
    assert await message_statuses(db) == ["delivered", "failed"]


async def test_a_message_queued_again_while_the_queue_drains_keeps_its_place(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    """The drain reads the queue a batch at a time; a failed message queued again meanwhile is
    older than the rest of that batch and goes out before them."""
    account = await new_account(db)
    webhook = await disabled_by_410(client, account, receiver, dispatcher)
    first_id = receiver.ids[0]
    assert (await enable(client, account, webhook["id"]))[0] == 200
    await create_contact(client, account, email="third@example.com")
    await create_contact(client, account, email="fourth@example.com")
    held = asyncio.Event()
    receiver.respond = lambda _request: Reply(hold=held)

    draining = asyncio.create_task(dispatcher.run_once())
    await receiver.wait_for(2)  # "third" is in flight, "fourth" is next in the batch
    queued = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": first_id}, headers=account.headers
    )
    assert queued.status_code == 202
    held.set()
    assert await draining == 3
    emails = [request.json()[0]["email"] for request in receiver.requests[1:]]
    assert emails == ["third@example.com", "first@example.com", "fourth@example.com"]


async def test_an_enabled_webhook_has_a_fresh_day_before_it_is_disabled_again(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    receiver.respond = lambda _r: Reply(500)
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    for _ in range(30):  # an hour at a time, past one day
        await dispatcher.run_once()
        clock.advance(minutes=61)
    assert (await only_webhook(client, account))["disabledReason"] == "failing for 24 hours"

    status, body = await enable(client, account, webhook["id"], redeliverFailed=True)
    assert status == 200 and body["data"]["requeued"] == 1
    before = len(receiver.requests)
    assert await dispatcher.run_once() == 1  # fails again, but its day starts now
    assert len(receiver.requests) == before + 1
    assert (await only_webhook(client, account))["disabledAt"] is None
    assert await message_statuses(db) == ["pending"]


async def test_enable_is_scoped_validated_and_harmless_on_an_enabled_webhook(
    client: Client, db: Database, receiver: Receiver
) -> None:
    account = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    webhook = await subscribe(client, account, receiver.url)

    assert (await enable(client, other, webhook["id"]))[0] == 404
    assert await enable(client, account, 99999) == (404, {"message": "Webhook not found"})
    status, body = await enable(client, account, webhook["id"], redeliverFailed=True)
    assert status == 200
    assert body["data"]["requeued"] == 0 and body["data"]["webhook"]["disabledAt"] is None

    missing = await client.post("/v1/webhooks/enable", json={}, headers=account.headers)
    assert missing.status_code == 400
    assert missing.json()["message"]["details"]["fieldErrors"] == {"id": ["Required"]}
    status, body = await enable(client, account, webhook["id"], redeliverFailed="yes")
    assert status == 400
    assert body["message"]["details"]["fieldErrors"] == {
        "redeliverFailed": ["Expected boolean, received string"]
    }
    unauthorised = await client.post("/v1/webhooks/enable", json={"id": webhook["id"]})
    assert unauthorised.status_code == 401
