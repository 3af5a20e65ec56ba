"""Group commit: one transaction per batch, failures isolated, and lock waits that never stall
the event loop (the SQLite writer runs inline, so it must not wait inside SQLite)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.storage.engine import Database
from contacts_api.storage.group_commit import GroupCommitter
from contacts_api.storage.models import tag_table
from contacts_api.timeutil import utcnow
from tests.factories import new_account
from tests.loop_ticks import LoopTicks


async def insert_tags(conn: AsyncConnection, jobs: list[tuple[int, str]]) -> list[object]:
    """A tiny batch handler: a tag per job; a name starting with '!' fails its job only."""
    results: list[object] = []
    for account_id, name in jobs:
        if name.startswith("!"):
            results.append(ValueError(name))
            continue
        await conn.execute(
            sa.insert(tag_table).values(account_id=account_id, name=name, created_at=utcnow())
        )
        results.append(name)
    return results


async def tag_names(db: Database) -> list[str]:
    async with db.read() as conn:
        result = await conn.execute(sa.select(tag_table.c.name).order_by(tag_table.c.name))
        return [str(n) for n in result.scalars()]


async def test_a_batch_commits_once_and_a_failing_job_fails_alone(db: Database) -> None:
    account = await new_account(db)
    committer: GroupCommitter[tuple[int, str], object] = GroupCommitter(db, insert_tags)
    try:
        results = await asyncio.gather(
            *(committer.submit((account.account_id, name)) for name in ("a", "!bad", "b")),
            return_exceptions=True,
        )
    finally:
        await committer.stop()
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ValueError)
    assert await tag_names(db) == ["a", "b"]


async def test_a_batch_waits_for_another_writer_without_stalling_the_loop(
    database_url: str, db: Database
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time; PostgreSQL writers do not wait here")
    account = await new_account(db)
    writer_db = Database(database_url)
    committer: GroupCommitter[tuple[int, str], object] = GroupCommitter(writer_db, insert_tags)
    try:
        async with (
            LoopTicks() as ticks,
            db.transaction() as conn,
        ):  # BEGIN IMMEDIATE: this test holds the write lock
            await conn.execute(sa.text("SELECT 1"))
            pending = asyncio.create_task(committer.submit((account.account_id, "late")))
            await asyncio.sleep(0.05)  # the writer is trying BEGIN IMMEDIATE by now
            # The loop keeps running while the writer waits: ten ticks of 10 ms come well
            # within the time limit (a writer blocking in SQLite's busy handler would hold the
            # loop for seconds at a time). Counted, not timed: a slow or busy machine (a full
            # collection of the suite's heap) only makes this take longer.
            await asyncio.wait_for(ticks.ten_more(), 5)
            assert not pending.done()  # no commit while another writer holds the lock
        assert await asyncio.wait_for(pending, 5) == "late"
    finally:
        await committer.stop()
        await writer_db.dispose()
    assert await tag_names(db) == ["late"]


async def test_jobs_queued_while_the_lock_is_busy_join_the_waiting_batch(
    database_url: str, db: Database
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time; PostgreSQL writers do not wait here")
    account = await new_account(db)
    writer_db = Database(database_url)
    batch_sizes: list[int] = []

    async def recording(conn: AsyncConnection, jobs: list[tuple[int, str]]) -> list[object]:
        batch_sizes.append(len(jobs))
        return await insert_tags(conn, jobs)

    committer: GroupCommitter[tuple[int, str], object] = GroupCommitter(writer_db, recording)
    try:
        async with db.transaction() as conn:  # this test holds the write lock
            await conn.execute(sa.text("SELECT 1"))
            first = asyncio.create_task(committer.submit((account.account_id, "first")))
            await asyncio.sleep(0.1)  # the writer has taken `first` and waits for the lock
            later = [
                asyncio.create_task(committer.submit((account.account_id, name)))
                for name in ("second", "third")
            ]
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(asyncio.gather(first, *later), 5) == [
            "first",
            "second",
            "third",
        ]
    finally:
        await committer.stop()
        await writer_db.dispose()
    assert batch_sizes == [3]  # one transaction, one commit for all three
