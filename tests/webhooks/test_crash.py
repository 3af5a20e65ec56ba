"""Crash safety: dispatcher processes SIGKILLed mid-stream lose nothing, duplicate little."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import suppress
from pathlib import Path

import pytest
import sqlalchemy as sa

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts.create_batch import CreateBatchHandler, CreateJob
from contacts_api.contacts.schemas import ContactCreate
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.models import webhook_attempt_table as attempts
from contacts_api.storage.models import webhook_message_table as messages
from contacts_api.timeutil import utcnow
from contacts_api.webhooks.outbox import record_contact_changes
from tests.conftest import make_settings
from tests.factories import AccountFixture, new_account
from tests.webhooks.conftest import Client, subscribe
from tests.webhooks.receiver import Receiver

CONTACTS = 1000
KILLS = 4
LEASE_SECONDS = 3  # short, so each killed dispatcher's endpoint frees up quickly


@pytest.fixture
def settings(database_url: str) -> Settings:
    """WAL with synchronous=NORMAL survives a killed process (only a power cut can lose the
    last commits), which is all this test does to it, and keeps 3,000 commits quick."""
    return make_settings(database_url, webhooks_allow_private=True, sqlite_synchronous="NORMAL")


async def start_dispatcher(database_url: str, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "CONTACTS_API_DATABASE_URL": database_url,
        "CONTACTS_API_WEBHOOKS_ALLOW_PRIVATE": "1",
        "CONTACTS_API_WEBHOOKS_LEASE_SECONDS": str(LEASE_SECONDS),
        "CONTACTS_API_WEBHOOKS_TIMEOUT_SECONDS": "2",
        "CONTACTS_API_WEBHOOKS_POLL_SECONDS": "0.1",
        "CONTACTS_API_LOG_FORMAT": "json",
        "CONTACTS_API_SQLITE_SYNCHRONOUS": "NORMAL",
    }
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "contacts_api",
            "webhooks",
            "dispatch",
            env=env,
            cwd=log.parent,  # no stray .env
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink,
        )


async def create_contacts(db: Database, account: AccountFixture) -> None:
    """Through the contacts service and the outbox, as POST /v1/contacts does, ten contacts
    per transaction (the machine is shared; what is under test is the dispatcher)."""
    principal = Principal(account_id=account.account_id, user_id=account.user_id, key_id=0)
    create_batch = CreateBatchHandler("upsert", record_change=record_contact_changes)
    for start in range(0, CONTACTS, 10):
        now = utcnow()
        jobs = [
            CreateJob(principal, ContactCreate(email=f"lead{n}@example.com"), now)
            for n in range(start, start + 10)
        ]
        async with db.transaction() as conn:  # as a group-commit batch of 10 would
            await create_batch(conn, jobs)
        await asyncio.sleep(0)  # let the receiver answer between transactions


async def delivered_count(db: Database) -> int:
    query = sa.select(sa.func.count()).where(messages.c.status == "delivered")
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_sigkilled_dispatchers_lose_no_event(
    client: Client,
    db: Database,
    receiver: Receiver,
    database_url: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    log = tmp_path / "dispatch.log"
    # The writer's own engine follows the settings (synchronous=NORMAL on SQLite).
    writer = Database(database_url, sqlite_synchronous=settings.sqlite_synchronous)
    creating = asyncio.create_task(create_contacts(writer, account))
    process = await start_dispatcher(database_url, log)
    try:
        for _ in range(KILLS):
            # Let it deliver a little, then kill it mid-stream and start another.
            target = len(receiver.requests) + 50
            with suppress(TimeoutError):
                async with asyncio.timeout(10):
                    while len(receiver.requests) < target:
                        await asyncio.sleep(0.01)
            # The replacement starts first (its start-up overlaps the dead one's lease).
            replacement = await start_dispatcher(database_url, log)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            process = replacement
        await creating
        async with asyncio.timeout(45):
            while await delivered_count(db) < CONTACTS:
                await asyncio.sleep(0.1)
        process.terminate()  # SIGTERM: a clean stop
        assert await process.wait() == 0
    finally:
        creating.cancel()
        await writer.dispose()
        if process.returncode is None:
            process.terminate()
            await process.wait()

    async with db.read() as conn:
        query = sa.select(messages.c.webhook_id).order_by(messages.c.id)
        outbox = list((await conn.execute(query)).scalars())
    received = receiver.ids
    assert len(outbox) == CONTACTS
    assert set(outbox) <= set(received), f"lost: {len(set(outbox) - set(received))}"
    assert list(dict.fromkeys(received)) == outbox  # first arrivals in the order of events
    duplicates = len(received) - len(set(received))
    async with db.read() as conn:
        unanswered = (
            await conn.execute(sa.select(sa.func.count()).where(attempts.c.status_code.is_(None)))
        ).scalar_one()
    # One endpoint has at most one attempt in flight. Each kill can repeat at most that one;
    # so can an attempt whose answer never came back in time (the receiver had it, we did not
    # know). Nothing else may ever be sent twice.
    assert duplicates <= KILLS + unanswered, (duplicates, unanswered)

    print(f"\n{len(received)} requests, {duplicates} duplicates, {unanswered} unanswered")
