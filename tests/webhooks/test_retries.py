"""Retries, Retry-After, 410, auto-disable, ordering and leases, driven by a controllable clock."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher
from contacts_api.webhooks.retry import FIRST_DELAY, RETRY_WINDOW, parse_retry_after
from tests.factories import new_account
from tests.webhooks.conftest import (
    Client,
    Clock,
    create_contact,
    deliveries,
    message_statuses,
    subscribe,
)
from tests.webhooks.receiver import Received, Receiver, Reply


class Script:
    """Answers from a list, then 200 for ever."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def __call__(self, _request: Received) -> Reply:
        return self.replies.pop(0) if self.replies else Reply()


async def test_failures_are_retried_with_growing_delays_until_delivered(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    receiver.respond = Script(
        Reply(500, body=b"x" * 5000), Reply(502), Reply(503), Reply(200, body=b"thanks")
    )
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")

    arrivals = []
    for _ in range(200):  # step through 100 seconds of schedule, half a second at a time
        if await dispatcher.run_once():
            arrivals.append(clock.now)
        clock.advance(seconds=0.5)
    # Attempts at 0, then after 5 s, 10 s and 20 s, each within the ±20 % jitter.
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) == 4, gaps
    for gap, nominal in zip(gaps, (5, 10, 20), strict=True):
        assert nominal * 0.8 <= gap <= nominal * 1.2 + 0.5, gaps
    assert len(set(receiver.ids)) == 1  # the same webhook-id every time

    log = (await deliveries(client, account))["deliveries"]
    assert [d["outcome"] for d in log] == ["delivered", "retrying", "retrying", "retrying"]
    assert [d["statusCode"] for d in log] == [200, 503, 502, 500]
    assert log[0]["response"] == "thanks"
    assert log[-1]["response"] == "x" * 1024  # the snippet stops at 1 KiB
    assert await message_statuses(db) == ["delivered"]


async def test_a_redelivered_message_starts_its_schedule_over(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    receiver.respond = Script(Reply(500), Reply(500), Reply(500), Reply(200), Reply(500))
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    for _ in range(100):  # 50 s: three failures (at 0, ~5 s, ~15 s), then delivered
        await dispatcher.run_once()
        clock.advance(seconds=0.5)
    assert await message_statuses(db) == ["delivered"]
    [message_id] = set(receiver.ids)
    response = await client.post(
        "/v1/webhooks/redeliver", json={"messageId": message_id}, headers=account.headers
    )
    assert response.status_code == 202
    assert await dispatcher.run_once() == 1  # fails (the fifth reply)
    started = clock.now
    while not await dispatcher.run_once():
        clock.advance(seconds=0.5)
        assert (clock.now - started).total_seconds() < 60, "never retried"
    # The first step of the schedule (5 s, ±20 %), not the fifth (80 s).
    assert 4 <= (clock.now - started).total_seconds() <= 6.5


async def test_retry_after_is_honoured(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    receiver.respond = Script(Reply(429, headers={"Retry-After": "120"}))
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")

    assert await dispatcher.run_once() == 1
    clock.advance(seconds=60)  # the backoff alone would have retried by now
    assert await dispatcher.run_once() == 0
    clock.advance(seconds=61)
    assert await dispatcher.run_once() == 1
    assert await message_statuses(db) == ["delivered"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        (" 7 ", timedelta(seconds=7)),
        # Never sooner than the backoff's first step: "0" once meant every poll for a day.
        ("0", FIRST_DELAY),
        ("4", FIRST_DELAY),
        ("Thu, 26 Nov 2026 11:00:00 GMT", FIRST_DELAY),  # a date already past
        ("999999999", RETRY_WINDOW),  # clamped to the retry window
        ("²", None),  # a Unicode digit is not delta-seconds
        ("١٢", None),
        ("1" * 20, None),  # too long to be delta-seconds, and not a date
        ("-5", None),
        ("Thu, 26 Nov 2026 12:02:00 GMT", timedelta(seconds=120)),
        ("Thu, 26 Nov 9999 12:02:00 GMT", RETRY_WINDOW),
        ("soon", None),
    ],
)
def test_retry_after_accepts_only_ascii_seconds_or_a_date(
    value: str, expected: timedelta | None
) -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == expected


@pytest.mark.parametrize("header", ["²", "1" * 20])
async def test_an_unreadable_retry_after_falls_back_to_the_backoff(
    client: Client,
    db: Database,
    receiver: Receiver,
    dispatcher: Dispatcher,
    clock: Clock,
    header: str,
) -> None:
    receiver.respond = Script(Reply(503, headers={"Retry-After": header}))
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")

    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0  # recorded and put off, not re-sent at once
    [attempt] = (await deliveries(client, account))["deliveries"]
    assert attempt["outcome"] == "retrying" and attempt["statusCode"] == 503
    clock.advance(seconds=7)
    assert await dispatcher.run_once() == 1
    assert await message_statuses(db) == ["delivered"]


async def test_an_attempt_that_cannot_be_recorded_still_waits_for_its_backoff(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    # A NUL in the response cannot be stored in PostgreSQL text: recording the attempt fails.
    receiver.respond = Script(Reply(500, body=b"bad\x00answer"))
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")

    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0
    assert len(receiver.ids) == 1
    clock.advance(seconds=7)
    assert await dispatcher.run_once() == 1
    assert await message_statuses(db) == ["delivered"]


async def test_410_disables_the_endpoint_at_once(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    receiver.respond = Script(Reply(410))
    account = await new_account(db)
    webhook = await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    await create_contact(client, account, email="b@example.com")

    assert await dispatcher.run_once() == 1
    [listed] = (await client.get("/v1/webhooks", headers=account.headers)).json()["data"][
        "webhooks"
    ]
    assert listed["id"] == webhook["id"]
    assert listed["disabledAt"] is not None and "410" in listed["disabledReason"]
    assert await message_statuses(db) == ["failed", "failed"]

    await create_contact(client, account, email="c@example.com")
    clock.advance(hours=1)
    assert await dispatcher.run_once() == 0
    assert len(receiver.requests) == 1
    assert await message_statuses(db) == ["failed", "failed"]  # nothing queued for it


async def test_an_endpoint_failing_for_a_day_is_disabled(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    receiver.respond = lambda _r: Reply(500)
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")

    for _ in range(60):  # an hour at a time, well past one day
        await dispatcher.run_once()
        clock.advance(minutes=61)
    attempts = len(receiver.requests)
    assert 15 <= attempts <= 40  # exponential up to an hourly pace, not a hammering
    [listed] = (await client.get("/v1/webhooks", headers=account.headers)).json()["data"][
        "webhooks"
    ]
    assert listed["disabledReason"] == "failing for 24 hours"
    assert await message_statuses(db) == ["failed"]
    log = (await deliveries(client, account, limit=1))["deliveries"]
    assert log[0]["outcome"] == "disabled"


async def test_an_endpoint_gets_its_events_in_order(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher, clock: Clock
) -> None:
    receiver.respond = Script(Reply(500))
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    for name in ("first", "second", "third"):
        await create_contact(client, account, email=f"{name}@example.com")

    assert await dispatcher.run_once() == 1  # the first failed: the others wait behind it
    clock.advance(seconds=10)
    assert await dispatcher.run_once() == 3
    emails = [r.json()[0]["email"] for r in receiver.requests]
    assert emails == [f"{n}@example.com" for n in ("first", "first", "second", "third")]


async def test_two_dispatchers_never_send_the_same_message_twice(
    client: Client, db: Database, receiver: Receiver, settings: Settings, clock: Clock
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await subscribe(client, account, receiver.url.replace("/hook", "/other"))
    for n in range(15):
        await create_contact(client, account, email=f"c{n}@example.com")

    async with (
        Dispatcher(db, settings, now=clock, name="one") as one,
        Dispatcher(db, settings, now=clock, name="two") as two,
    ):
        await asyncio.gather(one.run_once(), two.run_once(), one.run_once(), two.run_once())
        while await one.run_once():
            pass
    assert len(receiver.ids) == 30 and len(set(receiver.ids)) == 30


async def test_a_dead_dispatchers_endpoint_is_retried_at_once_after_its_lease(
    client: Client, db: Database, receiver: Receiver, settings: Settings, clock: Clock
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")

    async with Dispatcher(db, settings, now=clock, name="doomed") as doomed:
        assert await doomed.claim(10)  # claimed, then "killed" before recording anything
    async with Dispatcher(db, settings, now=clock, name="survivor") as survivor:
        assert await survivor.run_once() == 0  # the lease still holds
        clock.advance(seconds=settings.webhooks_lease_seconds)
        assert await survivor.run_once() == 1  # no backoff on top of the lease
    assert await message_statuses(db) == ["delivered"]
