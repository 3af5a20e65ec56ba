"""Finished messages, and their attempts, are deleted after the retention period; pending
ones stay whatever their age (webhooks/retention.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from contacts_api.cli import app
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.models import webhook_attempt_table, webhook_message_table
from contacts_api.webhooks import retention, service
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings
from tests.factories import AccountFixture, new_account
from tests.lock_waits import until_a_writer_waits
from tests.webhooks.conftest import Client, Clock, create_contact, deliveries, subscribe
from tests.webhooks.receiver import Receiver, Reply

KEEP = timedelta(days=30)


async def stored(db: Database) -> tuple[list[tuple[str, str]], list[str]]:
    """(webhook-id, status) of every message, and the webhook-id of every attempt."""
    m = webhook_message_table.c
    async with db.read() as conn:
        messages = (await conn.execute(sa.select(m.webhook_id, m.status).order_by(m.id))).all()
        attempts = await conn.execute(
            sa.select(m.webhook_id).join_from(webhook_attempt_table, webhook_message_table)
        )
        return [(str(w), str(s)) for w, s in messages], sorted(attempts.scalars())


@dataclass(frozen=True)
class History:
    """One contact's three messages, each attempted once: their webhook-ids."""

    account: AccountFixture
    delivered: str
    pending: str  # its receiver answered 500
    given_up: str  # its receiver answered 410: the webhook is disabled, the message failed


async def make_history(client: Client, db: Database, dispatcher: Dispatcher) -> History:
    account = await new_account(db)
    async with (
        Receiver() as ok,
        Receiver(lambda _r: Reply(500)) as failing,
        Receiver(lambda _r: Reply(410)) as gone,
    ):
        for receiver in (ok, failing, gone):
            await subscribe(client, account, receiver.url)
        await create_contact(client, account, email="a@example.com")
        assert await dispatcher.run_once() == 3
        (delivered,), (pending,), (given_up,) = ok.ids, failing.ids, gone.ids
    messages, _ = await stored(db)
    assert messages == [(delivered, "delivered"), (pending, "pending"), (given_up, "failed")]
    return History(account, delivered, pending, given_up)


@pytest.fixture
async def history(client: Client, db: Database, dispatcher: Dispatcher) -> History:
    """Attempted at the clock's time, a minute ahead of the real one."""
    return await make_history(client, db, dispatcher)


async def test_what_finished_before_the_period_goes_with_its_attempts(
    db: Database,
    clock: Clock,
    history: History,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delivered, pending, given_up = history.delivered, history.pending, history.given_up
    monkeypatch.setattr(retention, "WINDOW", 1)  # one message per transaction: every path

    assert await retention.prune(db, clock.now + KEEP - timedelta(seconds=1), KEEP) == 0
    assert (await stored(db))[1] == sorted([delivered, pending, given_up])

    assert await retention.prune(db, clock.now + KEEP + timedelta(seconds=1), KEEP) == 2
    assert await stored(db) == ([(pending, "pending")], [pending])


async def test_a_pruned_message_is_gone_from_the_log_and_from_redelivery(
    client: Client,
    db: Database,
    clock: Clock,
    history: History,
) -> None:
    headers = history.account.headers
    log = (await deliveries(client, history.account))["deliveries"]
    assert len(log) == 3
    await retention.prune(db, clock.now + KEEP + timedelta(days=1), KEEP)

    log = (await deliveries(client, history.account))["deliveries"]
    assert [d["statusCode"] for d in log] == [500]
    redeliver = {"messageId": history.delivered}
    response = await client.post("/v1/webhooks/redeliver", json=redeliver, headers=headers)
    assert response.status_code == 404
    redeliver = {"messageId": history.pending}
    response = await client.post("/v1/webhooks/redeliver", json=redeliver, headers=headers)
    assert response.status_code == 202


async def test_a_dispatcher_prunes_when_it_starts(
    database_url: str,
    db: Database,
    clock: Clock,
    history: History,
) -> None:
    clock.advance(days=2)
    settings = make_settings(database_url, webhooks_retention_days=1)
    async with Dispatcher(db, settings, now=clock, name="pruner") as dispatcher:
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop))
        try:
            async with asyncio.timeout(20):
                while len((await stored(db))[0]) > 1:
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running
    # Kept: still pending, or given up by this run's attempt (a day past its first one),
    # which finished it after the cutoff; which of the two depends on the dispatcher's pace.
    [(webhook_id, _)] = (await stored(db))[0]
    assert webhook_id == history.pending


async def test_retention_zero_keeps_everything(
    database_url: str,
    db: Database,
    clock: Clock,
    history: History,
) -> None:
    before = await stored(db)
    clock.advance(days=3650)
    settings = make_settings(database_url, webhooks_retention_days=0)
    async with Dispatcher(db, settings, now=clock, name="keeper") as dispatcher:
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(settings.webhooks_poll_seconds * 2)
        stop.set()
        await running
    # The pending message was attempted again meanwhile; nothing was deleted.
    assert [w for w, _ in (await stored(db))[0]] == [w for w, _ in before[0]]


async def test_the_prune_command(
    database_url: str, client: Client, db: Database, settings: Settings
) -> None:
    env = {"CONTACTS_API_DATABASE_URL": database_url}

    def prune(*args: str, **more_env: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, ["webhooks", "prune", *args], env={**env, **more_env})
        return result.exit_code, result.stdout, result.stderr

    # Attempted at the real time, which the command's cutoff is measured from.
    async with Dispatcher(db, settings, name="real-time") as dispatcher:
        history = await make_history(client, db, dispatcher)

    # Finished seconds ago: the default 30 days keeps them.
    assert await asyncio.to_thread(prune) == (0, '{"deleted": 0}\n', "")
    code, _, err = await asyncio.to_thread(prune, CONTACTS_API_WEBHOOKS_RETENTION_DAYS="0")
    assert code == 1 and "give --older-than-days" in err
    assert (await asyncio.to_thread(prune, "--older-than-days", "-1"))[0] == 2
    assert await asyncio.to_thread(prune, "--older-than-days", "0") == (0, '{"deleted": 2}\n', "")
    assert await stored(db) == ([(history.pending, "pending")], [history.pending])


async def test_a_redelivery_under_way_is_not_pruned(
    db: Database, clock: Clock, history: History
) -> None:
    """The prune reads its window, then deletes: a redelivery committed in between (here:
    holding the row while the prune waits) makes the message pending, and it stays."""
    async with db.transaction() as conn:
        await service.redeliver(conn, history.account.account_id, history.delivered, clock.now)
        pruning = asyncio.create_task(
            retention.prune(db, clock.now + KEEP + timedelta(days=1), KEEP)
        )
        await until_a_writer_waits(db)  # the prune, on the redelivery's row (or turn)
    assert await pruning == 1  # the given-up message only
    messages, _ = await stored(db)
    assert (history.delivered, "pending") in messages
