"""Delivery end to end against a real local receiver: signatures, payloads, the outbox."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook, WebhookVerificationError

from contacts_api.accounts.schemas import Principal
from contacts_api.app import create_app
from contacts_api.contacts.create_batch import CreateBatchHandler, CreateJob
from contacts_api.contacts.schemas import ContactCreate
from contacts_api.contacts.service import CreateOutcome
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.models import webhook_endpoint_table as endpoints
from contacts_api.storage.models import webhook_message_table as messages
from contacts_api.timeutil import utcnow
from contacts_api.webhooks import service
from contacts_api.webhooks.dispatcher import Dispatcher
from contacts_api.webhooks.outbox import record_contact_changes
from tests.conftest import make_settings
from tests.factories import AccountFixture, new_account, new_event
from tests.lock_waits import until_a_writer_waits
from tests.webhooks.conftest import (
    Client,
    Clock,
    create_contact,
    deliveries,
    message_statuses,
    subscribe,
)
from tests.webhooks.receiver import Received, Receiver, Reply

CREATE_BATCH = CreateBatchHandler("upsert", record_change=record_contact_changes)


def verify(secret: str, request: Any) -> Any:
    """What a receiver does with the reference library: raises when anything is off."""
    return Webhook(secret).verify(request.body, request.headers)


async def test_signed_delivery_verifies_with_standardwebhooks(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    event_id = await new_event(db, account, "Product Demo", "acme/product-demo")
    webhook = await subscribe(client, account, receiver.url)
    contact = await create_contact(
        client, account, email="jane@example.com", eventName="Product Demo", utm="utm_source=x"
    )

    assert await dispatcher.run_once() == 1
    [request] = receiver.requests
    payload = verify(webhook["secret"], request)
    assert request.webhook_id.startswith("msg_")
    assert isinstance(payload, list) and len(payload) == 1
    [item] = payload
    assert {k: item[k] for k in contact} == contact  # the full contact object
    assert item["hookType"] == "Contact created"
    assert item["updatedAttributes"] == []
    assert item["tracking"] == {"utm_source": "x", "first_utm_source": "x"}
    assert item["event"] == {
        "id": event_id,
        "name": "Product Demo",
        "linkPrefix": "acme/product-demo",
        "eventType": "ONE_ON_ONE",
    }

    tampered = request.body.replace(b"jane@example.com", b"evil@example.com")
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook["secret"]).verify(tampered, request.headers)
    stale = {**request.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook["secret"]).verify(request.body, stale)


async def test_upsert_that_changes_fields_sends_contact_updated(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="jane@example.com", firstName="Jane")
    await create_contact(client, account, email="jane@example.com", firstName="Janet")
    await create_contact(client, account, email="jane@example.com", firstName="Janet")  # no-op

    await dispatcher.run_once()
    created, updated = (verify(webhook["secret"], r)[0] for r in receiver.requests)
    assert created["hookType"] == "Contact created"
    assert updated["hookType"] == "Contact updated"
    assert updated["updatedAttributes"] == ["firstName"]
    assert updated["firstName"] == "Janet" and "event" not in updated
    assert len(receiver.requests) == 2  # the upsert that changed nothing sent nothing


async def test_only_subscribed_events_and_accounts_get_messages(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    acme = await new_account(db)
    quiet = await new_account(db, "quiet", "owner@quiet.test")
    await subscribe(client, acme, receiver.url, ("contactDetailChanged",))
    await create_contact(client, acme, email="a@example.com")
    await create_contact(client, quiet, email="b@example.com")
    assert await message_statuses(db) == []
    await create_contact(client, acme, email="a@example.com", lastName="Changed")
    assert await message_statuses(db) == ["pending"]


async def test_a_rolled_back_change_emits_nothing(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    principal = Principal(account_id=account.account_id, user_id=account.user_id, key_id=0)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.transaction() as conn:
            # The production create path: a group-commit batch with its outbox rows.
            [outcome] = await CREATE_BATCH(
                conn, [CreateJob(principal, ContactCreate(email="ghost@example.com"), utcnow())]
            )
            assert isinstance(outcome, CreateOutcome) and outcome.created
            queued = await conn.execute(sa.select(sa.func.count()).select_from(messages))
            assert queued.scalar_one() == 1  # queued inside the transaction...
            raise Abort  # e.g. a later step of the same request failed

    assert await message_statuses(db) == []  # ...and gone with its rollback
    assert await dispatcher.run_once() == 0
    assert receiver.requests == []


async def test_old_and_new_secret_both_sign_after_rotation(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url)
    response = await client.post(
        "/v1/webhooks/rotate-secret", json={"id": webhook["id"]}, headers=account.headers
    )
    new_secret = response.json()["data"]["webhook"]["secret"]
    await create_contact(client, account, email="a@example.com")
    await dispatcher.run_once()
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(webhook["secret"], request)
    verify(new_secret, request)

    clock.advance(hours=25)  # the old secret's day is over
    await create_contact(client, account, email="b@example.com")
    await dispatcher.run_once()
    later = receiver.requests[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    signed_at = int(later.headers["webhook-timestamp"])
    assert signed_at >= int(clock.now.timestamp())


async def delivered_after_rotations(
    client: Client, account: AccountFixture, receiver: Receiver, dispatcher: Dispatcher, n: int
) -> tuple[list[str], Received]:
    """Subscribe, rotate the secret `n` times, deliver one event: every secret the webhook
    has had, oldest first, and the request that arrived."""
    webhook = await subscribe(client, account, receiver.url)
    secrets = [webhook["secret"]]
    for _ in range(n):
        response = await client.post(
            "/v1/webhooks/rotate-secret", json={"id": webhook["id"]}, headers=account.headers
        )
        assert response.status_code == 200, response.text
        secrets.append(response.json()["data"]["webhook"]["secret"])
    await create_contact(client, account, email="a@example.com")
    await dispatcher.run_once()
    [request] = receiver.requests
    return secrets, request


def signatures(request: Received) -> int:
    return len(request.headers["webhook-signature"].split(" "))


async def test_every_secret_replaced_within_a_day_keeps_signing(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    """A second rotation within 24 hours used to drop the first replaced secret at once."""
    account = await new_account(db)
    secrets, request = await delivered_after_rotations(client, account, receiver, dispatcher, 2)
    assert signatures(request) == 3
    for secret in secrets:
        verify(secret, request)

    clock.advance(hours=25)  # every replaced secret's day is over
    await create_contact(client, account, email="b@example.com")
    await dispatcher.run_once()
    assert signatures(receiver.requests[1]) == 1


async def test_at_most_four_replaced_secrets_sign_beside_the_current_one(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    secrets, request = await delivered_after_rotations(client, account, receiver, dispatcher, 5)
    assert signatures(request) == 5
    for secret in secrets[1:]:
        verify(secret, request)
    with pytest.raises(WebhookVerificationError):
        verify(secrets[0], request)  # the oldest of six stopped signing


async def test_two_rotations_at_once_both_answer_a_secret_that_signs(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    """The second rotation waits for the first (its row is locked): it replaces the secret
    the first one answered, which keeps signing, instead of both replacing the same one."""
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url)
    async with db.transaction() as conn:
        first = await service.rotate_secret(conn, account.account_id, webhook["id"], utcnow())
        second = asyncio.create_task(rotate_in_own_transaction(db, account, webhook["id"]))
        await until_a_writer_waits(db)  # the second, on the first's row (or turn)
    second_secret = await second
    await create_contact(client, account, email="a@example.com")
    await dispatcher.run_once()
    [request] = receiver.requests
    for secret in (webhook["secret"], first.secret, second_secret):
        verify(secret, request)


async def rotate_in_own_transaction(db: Database, account: AccountFixture, webhook_id: int) -> str:
    async with db.transaction() as conn:
        return (await service.rotate_secret(conn, account.account_id, webhook_id, utcnow())).secret


async def test_redeliver_sends_the_same_message_again(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    await dispatcher.run_once()
    [first] = receiver.requests

    response = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": first.webhook_id}, headers=account.headers
    )
    assert response.status_code == 202
    await dispatcher.run_once()
    assert receiver.ids == [first.webhook_id, first.webhook_id]
    assert receiver.requests[1].body == first.body

    unknown = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": "msg_nope"}, headers=account.headers
    )
    assert unknown.status_code == 404


async def test_redeliver_of_a_message_still_waiting_its_turn_sends_it_once(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    """Asked again before its first send (it waits behind an older one, in the batch the
    drain already read), a message goes out once, from its row as it is now."""
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    await create_contact(client, account, email="b@example.com")
    held = asyncio.Event()
    receiver.respond = lambda _request: Reply(hold=held)
    draining = asyncio.create_task(dispatcher.run_once())
    await receiver.wait_for(1)  # "a" in flight, "b" read with it
    async with db.read() as conn:
        query = sa.select(messages.c.webhook_id).order_by(messages.c.id)
        first_id, second_id = (await conn.execute(query)).scalars().all()
    response = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": second_id}, headers=account.headers
    )
    assert response.status_code == 202
    held.set()
    assert await draining == 2
    assert await dispatcher.run_once() == 0
    assert receiver.ids == [first_id, second_id]
    assert await message_statuses(db) == ["delivered", "delivered"]


@pytest.mark.parametrize("answer", [200, 500])
async def test_redeliver_while_the_message_is_in_flight_sends_it_again(
    client: Client,
    db: Database,
    receiver: Receiver,
    dispatcher: Dispatcher,
    clock: Clock,
    answer: int,
) -> None:
    """The attempt on its way is logged, but does not undo the redelivery asked meanwhile:
    the message goes out again at once, with a fresh retry schedule."""
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    held = asyncio.Event()
    receiver.respond = lambda _request: Reply(answer, hold=held)
    draining = asyncio.create_task(dispatcher.run_once())
    await receiver.wait_for(1)
    response = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": receiver.ids[0]}, headers=account.headers
    )
    assert response.status_code == 202
    held.set()
    await draining
    receiver.respond = lambda _request: Reply()
    await dispatcher.run_once()
    assert receiver.ids == [receiver.ids[0]] * 2
    assert await message_statuses(db) == ["delivered"]
    outcomes = sorted(
        entry["outcome"] for entry in (await deliveries(client, account))["deliveries"]
    )
    assert outcomes == sorted(["delivered", "delivered" if answer == 200 else "retrying"])


async def test_refused_address_at_delivery_time_is_logged_not_sent(
    client: Client, db: Database, receiver: Receiver, settings: Settings, clock: Clock
) -> None:
    """Subscribed while allowed; the dispatcher checks again (as after a DNS change)."""
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    strict = make_settings(settings.database_url)
    async with Dispatcher(db, strict, now=clock) as guarded:
        assert await guarded.run_once() == 1
    assert receiver.requests == []
    log = await deliveries(client, account, webhookId=webhook["id"])
    [attempt] = log["deliveries"]
    assert attempt["statusCode"] is None and attempt["outcome"] == "retrying"
    assert attempt["error"].startswith("refused:")


@pytest.mark.parametrize("stored", ["http://\uff18.8.8.8/hook", " {receiver}"])
async def test_a_stored_url_httpx_cannot_send_to_is_a_failed_attempt(
    client: Client,
    db: Database,
    receiver: Receiver,
    settings: Settings,
    clock: Clock,
    stored: str,
) -> None:
    """Subscribed before the check asked httpx too (webhooks/ssrf.split_url): a host that
    Python's IDNA codec reads as 8.8.8.8. The attempt is recorded as failed, and retried and
    in time disabled like any other; it used to raise out of every drain, twice a second.
    So did a URL with a leading space (httpx.InvalidURL from building the request)."""
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url)
    async with db.transaction() as conn:
        await conn.execute(
            sa.update(endpoints)
            .where(endpoints.c.id == webhook["id"])
            .values(url=stored.format(receiver=receiver.url))
        )
    await create_contact(client, account, email="a@example.com")
    async with Dispatcher(db, settings, now=clock) as dispatcher:
        assert await dispatcher.run_once() == 1
    log = await deliveries(client, account, webhookId=webhook["id"])
    [attempt] = log["deliveries"]
    assert attempt["outcome"] == "retrying"
    assert attempt["error"].startswith("refused: invalid URL")
    assert receiver.requests == []


async def test_the_server_dispatches_by_itself(
    database_url: str, db: Database, receiver: Receiver
) -> None:
    """With the default settings a running server delivers on its own, within seconds."""
    account = await new_account(db)
    settings = make_settings(
        database_url, webhooks_allow_private=True, webhooks_dispatch_in_server=True
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        webhook = await subscribe(client, account, receiver.url)
        await create_contact(client, account, email="a@example.com")
        await receiver.wait_for(1, timeout=10)
        for _ in range(100):  # the attempt is logged just after the receiver answered
            if (await deliveries(client, account))["count"]:
                break
            await asyncio.sleep(0.05)
    verify(webhook["secret"], receiver.requests[0])
    assert await message_statuses(db) == ["delivered"]
