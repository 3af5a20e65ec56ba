"""PostgreSQL's planner learns that `contact` grew under a burst of creates
(contacts/statistics.py), and the create batches report what they created."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.contacts.create_batch import CreateBatchHandler
from contacts_api.contacts.statistics import GrowthAnalyzer
from contacts_api.storage.engine import Database
from contacts_api.storage.group_commit import GroupCommitter
from tests.contacts.test_create_batch import RolledBack, job
from tests.factories import new_account


async def planner_rows(db: Database) -> float:
    """What the planner believes `contact` holds (pg_class.reltuples; -1: never analyzed)."""
    query = sa.text("SELECT reltuples FROM pg_class WHERE relname = 'contact'")
    async with db.read() as conn:
        return float((await conn.execute(query)).scalar_one())


async def stored_rows(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM contact"))).scalar_one())


async def test_committed_batches_report_the_contacts_they_created(db: Database) -> None:
    account = await new_account(db)
    reported: list[int] = []
    handler = CreateBatchHandler("upsert", on_created=reported.append)
    committer = GroupCommitter(db, handler, after_batch=handler.finished)
    try:
        await committer.submit(job(account, email="a@x.io"))
        # One batch: two new contacts, an upsert of one of them, and an invalid item.
        await asyncio.gather(
            committer.submit(job(account, email="b@x.io")),
            committer.submit(job(account, email="c@x.io")),
            committer.submit(job(account, email="A@x.io", firstName="Ann")),
            committer.submit(job(account, email="d@x.io", eventId=999)),
            return_exceptions=True,
        )
    finally:
        await committer.stop()
    assert sum(reported) == 3
    assert reported[0] == 1

    # A batch that never commits reports nothing.
    with pytest.raises(RolledBack):
        async with db.transaction() as conn:
            await handler(conn, [job(account, email="e@x.io")])
            raise RolledBack
    handler.finished(conn, committed=False)
    assert sum(reported) == 3


async def test_the_planner_learns_the_table_grew(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("PostgreSQL's planner statistics; SQLite picks the unique index by itself")
    account = await new_account(db)
    analyzer = GrowthAnalyzer(db, first_at=10)
    handler = CreateBatchHandler("upsert", on_created=analyzer.created_contacts)
    committer = GroupCommitter(db, handler, after_batch=handler.finished)
    try:
        for n in range(9):
            await committer.submit(job(account, email=f"g{n}@x.io"))
        assert analyzer.refreshes == 0  # below the first mark: nothing ran
        assert await planner_rows(db) != await stored_rows(db)
        await committer.submit(job(account, email="g9@x.io"))
        await analyzer.wait_for_refresh()
    finally:
        await committer.stop()
        await analyzer.stop()
    assert analyzer.refreshes == 1
    assert await planner_rows(db) == await stored_rows(db)
    assert analyzer.next_at == 20  # the next refresh once the created contacts doubled


async def test_the_server_counts_creates_of_both_create_routes_toward_a_refresh(
    app: Litestar, client: AsyncTestClient[Litestar], db: Database
) -> None:
    analyzer: GrowthAnalyzer | None = app.state.analyzer
    if db.is_sqlite:
        assert analyzer is None  # nothing to refresh
        return
    assert analyzer is not None
    account = await new_account(db)
    response = await client.post("/v1/contacts", json={"email": "s@x.io"}, headers=account.headers)
    assert response.status_code == 201
    items = [{"email": f"s{n}@x.io"} for n in range(4)] + [{"email": "S@x.io"}]
    response = await client.post("/v1/contacts/bulk", json=items, headers=account.headers)
    assert response.status_code == 200
    assert analyzer.created == 5  # 1 + 4 new; the upsert of s@x.io is no new contact
