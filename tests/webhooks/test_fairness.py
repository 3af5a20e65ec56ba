"""One account's busy endpoints cannot keep another account's events waiting.

Free delivery slots go to the fairest due endpoint (an account's k-th waiting endpoint ranks
behind every account's first), and a drain lets its endpoint go after its time budget.
"""

from __future__ import annotations

import asyncio

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.webhooks import repository as repo
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings
from tests.factories import AccountFixture, new_account
from tests.webhooks.conftest import Client, Clock, create_contact, subscribe
from tests.webhooks.receiver import Receiver, Reply


async def subscribe_many(
    client: Client, account: AccountFixture, receiver: Receiver, count: int
) -> list[int]:
    return [
        int((await subscribe(client, account, f"{receiver.url}/{n}"))["id"]) for n in range(count)
    ]


async def lease_owner(db: Database, endpoint_id: int) -> str | None:
    async with db.read() as conn:
        endpoint = await repo.get_endpoint(conn, endpoint_id)
    assert endpoint is not None
    return endpoint.lease_owner


async def test_a_free_slot_goes_to_the_account_holding_fewest(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    busy = await new_account(db, "busy", "owner@busy.test")
    quiet = await new_account(db, "quiet", "owner@quiet.test")
    first, second, third = await subscribe_many(client, busy, receiver, 3)
    [other] = await subscribe_many(client, quiet, receiver, 1)
    await create_contact(client, busy, email="a@busy.test")
    await create_contact(client, quiet, email="a@quiet.test")

    # Claimed one slot at a time, as a dispatcher whose drains end one by one does: the
    # quiet account's endpoint comes second, not after all of the busy account's.
    claimed = [await dispatcher.claim(1) for _ in range(4)]

    assert claimed == [[first], [other], [second], [third]]


async def test_endpoints_without_a_queue_are_passed_over_wherever_they_lie(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    """The ranking looks only at endpoints with pending messages, found by hopping along the
    pending index: idle endpoints between them, and a long backlog, must not hide any."""
    busy = await new_account(db, "busy", "owner@busy.test")
    quiet = await new_account(db, "quiet", "owner@quiet.test")
    deleted_only = ("contactDeleted",)
    first = int((await subscribe(client, busy, f"{receiver.url}/1"))["id"])
    await subscribe(client, busy, f"{receiver.url}/idle-1", deleted_only)
    second = int((await subscribe(client, busy, f"{receiver.url}/2"))["id"])
    await subscribe(client, quiet, f"{receiver.url}/idle-2", deleted_only)
    other = int((await subscribe(client, quiet, f"{receiver.url}/3"))["id"])
    await subscribe(client, quiet, f"{receiver.url}/idle-3", deleted_only)
    for n in range(30):  # a backlog on both of the busy account's endpoints
        await create_contact(client, busy, email=f"c{n}@busy.test")
    await create_contact(client, quiet, email="a@quiet.test")

    claimed = [await dispatcher.claim(1) for _ in range(4)]

    assert claimed == [[first], [other], [second], []]


async def test_a_drain_lets_go_of_its_endpoint_when_its_time_is_up(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    [endpoint] = await subscribe_many(client, account, receiver, 1)
    for n in range(3):
        await create_contact(client, account, email=f"c{n}@example.com")

    assert await dispatcher.claim(1) == [endpoint]
    assert await dispatcher.drain(endpoint, seconds=0) == 1
    assert await lease_owner(db, endpoint) is None
    assert await dispatcher.claim(1) == [endpoint]
    assert await dispatcher.drain(endpoint, seconds=0) == 1

    emails = [r.json()[0]["email"] for r in receiver.requests]
    assert emails == ["c0@example.com", "c1@example.com"]  # still oldest first


async def test_a_slow_accounts_backlog_does_not_hold_back_another_account(
    database_url: str, client: Client, db: Database, clock: Clock
) -> None:
    settings: Settings = make_settings(
        database_url, webhooks_allow_private=True, webhooks_poll_seconds=0.1
    )
    busy = await new_account(db, "busy", "owner@busy.test")
    quiet = await new_account(db, "quiet", "owner@quiet.test")
    async with Receiver(lambda _r: Reply(delay_s=0.2)) as slow, Receiver() as quick:
        await subscribe_many(client, busy, slow, 4)
        await subscribe_many(client, quiet, quick, 1)
        for n in range(5):  # 20 messages, 4 s of answering on two slots
            await create_contact(client, busy, email=f"c{n}@busy.test")
        async with Dispatcher(
            db, settings, now=clock, name="fair", concurrency=2, drain_seconds=0.3
        ) as dispatcher:
            stop = asyncio.Event()
            running = asyncio.create_task(dispatcher.run(stop))
            try:
                await slow.wait_for(2)  # both slots are busy with the slow account
                await create_contact(client, quiet, email="a@quiet.test")
                sent_before = len(slow.requests)
                await quick.wait_for(1)
                sent_meanwhile = len(slow.requests) - sent_before
            finally:
                stop.set()
                await running

    # Draining each endpoint to its end, then the next by id, sent ~16 of the slow
    # account's messages first; with turns, the two drains each finish a turn (two
    # attempts of 0.2 s) and the first slot freed goes to the quiet account.
    assert sent_meanwhile <= 6, sent_meanwhile
