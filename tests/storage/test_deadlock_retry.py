"""PostgreSQL aborts one of two deadlocked transactions; the victim runs again and both land.

Two writers lock two rows in opposite orders, each waiting until the other holds its first:
a true deadlock every time. PostgreSQL aborts the one that waited first (after
deadlock_timeout, 1 s) and the other goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from structlog.testing import capture_logs

from contacts_api.accounts.schemas import Principal
from contacts_api.bulk_jobs import ImportSummary, import_file
from contacts_api.contacts.create_batch import CreateBatchHandler, CreateJob
from contacts_api.contacts.rules import parse_contact_create
from contacts_api.contacts.service import CreateOutcome
from contacts_api.storage.engine import Database
from contacts_api.storage.models import account_table, contact_table, tag_table
from contacts_api.timeutil import utcnow
from tests.factories import AccountFixture, new_account
from tests.lock_waits import until_a_writer_waits


@pytest.fixture
def pg(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("SQLite's writers run one at a time: no deadlock to break")
    return db


async def lock(conn: AsyncConnection, account_id: int) -> None:
    query = sa.select(account_table.c.id).where(account_table.c.id == account_id)
    await conn.execute(query.with_for_update())


async def test_the_deadlock_victim_runs_again_and_both_commit(pg: Database) -> None:
    first, second = await new_account(pg, "one", "o@one.test"), await new_account(pg, "two")
    holding = {name: asyncio.Event() for name in ("a", "b")}
    runs = {"a": 0, "b": 0}

    def writer(name: str, mine: int, theirs: int, other: str) -> Any:
        async def work(conn: AsyncConnection) -> str:
            runs[name] += 1
            await lock(conn, mine)
            holding[name].set()
            await holding[other].wait()
            await lock(conn, theirs)
            return name

        return work

    with capture_logs() as logs:
        done = await asyncio.wait_for(
            asyncio.gather(
                pg.transaction_retrying(writer("a", first.account_id, second.account_id, "b"), "a"),
                pg.transaction_retrying(writer("b", second.account_id, first.account_id, "a"), "b"),
            ),
            timeout=30,
        )
    assert done == ["a", "b"]
    assert sorted(runs.values()) == [1, 2]  # one of them ran twice
    assert [e["event"] for e in logs if e["log_level"] == "info"] == [
        "deadlock victim; running it again"
    ]


async def test_a_create_batch_chosen_as_victim_runs_again_whole(pg: Database) -> None:
    """The batch locks an existing contact, then inserts a new email that another writer has
    inserted and not yet committed; that writer then wants the existing contact."""
    account: AccountFixture = await new_account(pg)
    principal = Principal(account.account_id, account.user_id, key_id=0)
    now = utcnow()
    handler = CreateBatchHandler("upsert")
    async with pg.transaction() as conn:
        setup = await handler(conn, [CreateJob(principal, parse(email="old@x.test"), now)])
    assert isinstance(setup[0], CreateOutcome)
    existing_id = setup[0].contact.id

    async def other_writer(batch_waiting: asyncio.Event) -> None:
        async with pg.transaction() as conn:
            await conn.execute(
                sa.insert(contact_table).values(
                    account_id=account.account_id, user_id=account.user_id,
                    email="new@x.test", email_key="new@x.test", status="POTENTIAL",
                    preview_id="contact_deadlock1", blocked_by_recaptcha=False,
                    joined_time=now, tracking={}, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            inserted.set()
            await batch_waiting.wait()
            await until_a_writer_waits(pg)  # the batch, on our uncommitted email
            query = sa.select(contact_table.c.id).where(contact_table.c.id == existing_id)
            await conn.execute(query.with_for_update())

    inserted, batch_started = asyncio.Event(), asyncio.Event()
    jobs = [
        CreateJob(principal, parse(email="old@x.test", firstName="Changed"), now),
        CreateJob(principal, parse(email="new@x.test", firstName="New"), now),
    ]

    async def batch() -> list[Any]:
        await inserted.wait()
        async with pg.batch_transaction() as conn:
            batch_started.set()
            return await handler(conn, jobs)

    with capture_logs() as logs:
        outcomes, _ = await asyncio.wait_for(
            asyncio.gather(batch(), other_writer(batch_started)), timeout=30
        )
    assert all(isinstance(o, CreateOutcome) for o in outcomes), outcomes
    assert [o.created for o in outcomes] == [False, False]  # both emails existed by then
    events = [(e["event"], e.get("work")) for e in logs]
    assert ("deadlock victim; running it again", "create batch") in events
    assert not any(event.startswith("batched create failed") for event, _ in events)


def parse(**body: Any) -> Any:
    return parse_contact_create(body)


async def test_an_import_batch_chosen_as_victim_runs_again_and_the_import_completes(
    pg: Database, tmp_path: Path
) -> None:
    """The import's batch inserts b@ then waits on a@, which another writer inserted and has
    not committed; that writer then inserts b@. The import, waiting first, is the victim, and
    its second run must not trust the tag its first run made (it went with the rollback)."""
    account = await new_account(pg)
    path = tmp_path / "leads.csv"
    path.write_text("email,firstName,tag\nb@x.test,B,vip\na@x.test,A,vip\nc@x.test,C,vip\n")

    async def insert_a(conn: AsyncConnection) -> None:
        await conn.execute(sa.insert(contact_table).values(contact_row(account, "a@x.test")))

    summary, contacts = await import_as_deadlock_victim(pg, path, account, insert_a)

    # Run again after the other writer committed a@ and b@: those rows updated them.
    assert (summary.created, summary.updated, summary.failed) == (1, 2, 0)
    assert contacts == [
        ("a@x.test", "A", "vip"),
        ("b@x.test", "B", "vip"),
        ("c@x.test", "C", "vip"),
    ]


async def test_an_import_batch_run_again_looks_up_the_tags_of_its_general_path_anew(
    pg: Database, tmp_path: Path
) -> None:
    """The batch inserts b@, then, on the general path, makes tag `new` for x@ (an existing
    contact) and waits for x@'s row, which another writer has locked; that writer then
    inserts b@. The batch's second run must not use the id of the `new` the first made."""
    account = await new_account(pg)
    async with pg.transaction() as conn:
        await conn.execute(sa.insert(contact_table).values(contact_row(account, "x@x.test")))
    path = tmp_path / "leads.csv"
    path.write_text("email,firstName,tag\nb@x.test,B,\nx@x.test,X,new\n")

    async def lock_x(conn: AsyncConnection) -> None:
        query = sa.select(contact_table.c.id).where(contact_table.c.email == "x@x.test")
        await conn.execute(query.with_for_update())

    summary, contacts = await import_as_deadlock_victim(pg, path, account, lock_x)

    assert (summary.created, summary.updated, summary.failed) == (0, 2, 0)
    assert contacts == [("b@x.test", "B", None), ("x@x.test", "X", "new")]


async def import_as_deadlock_victim(
    pg: Database,
    path: Path,
    account: AccountFixture,
    hold: Callable[[AsyncConnection], Awaitable[None]],
) -> tuple[ImportSummary, list[tuple[Any, ...]]]:
    """Import `path` (its first row b@x.test) while another writer holds what `hold` takes,
    waits until the import waits on it, then inserts b@x.test: a deadlock whose victim is
    the import (it waited first). Asserts the import ran its batch again; returns its
    summary and the account's contacts as (email, first name, tag name)."""
    holding, started = asyncio.Event(), asyncio.Event()

    async def other_writer() -> None:
        async with pg.transaction() as conn:
            await hold(conn)
            holding.set()
            await started.wait()
            await until_a_writer_waits(pg)  # the import, on what we hold
            await conn.execute(sa.insert(contact_table).values(contact_row(account, "b@x.test")))

    async def run_import() -> ImportSummary:
        await holding.wait()
        started.set()
        return await import_file(pg, path, account.name)

    with capture_logs() as logs:
        summary, _ = await asyncio.wait_for(asyncio.gather(run_import(), other_writer()), 60)
    assert ("deadlock victim; running it again", "import batch") in [
        (e["event"], e.get("work")) for e in logs
    ]
    async with pg.read() as conn:
        query = sa.select(contact_table.c.email, contact_table.c.first_name, tag_table.c.name)
        rows = (await conn.execute(query.outerjoin(tag_table))).all()
    return summary, sorted(map(tuple, rows))


def contact_row(account: AccountFixture, email: str) -> dict[str, Any]:
    """A new contact's columns, as a bare INSERT takes them (another writer's)."""
    now = utcnow()
    return dict(
        account_id=account.account_id, user_id=account.user_id, email=email, email_key=email,
        status="POTENTIAL", preview_id=f"contact_{email.split('@')[0]:x<12}",
        blocked_by_recaptcha=False, joined_time=now, tracking={}, created_at=now, updated_at=now,
    )  # fmt: skip
