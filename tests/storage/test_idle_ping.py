"""The PostgreSQL group-commit writer's connection skips pool_pre_ping while busy and is
pinged after an idle spell instead (storage/engine.py: ping_when_idle)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from contacts_api.storage import engine
from contacts_api.storage.engine import Database


async def writer_pid(db: Database) -> int:
    async with db.batch_transaction() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_dropped_while_idle_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writer is a file handle: nothing to drop")
    monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 0.2)
    db = Database(database_url)
    admin = Database(database_url)
    try:
        first = await writer_pid(db)
        assert await writer_pid(db) == first  # busy: the same connection, no new one
        async with admin.transaction() as conn:  # the server drops it (a restart, a failover)
            await conn.execute(sa.text(f"SELECT pg_terminate_backend({first})"))
        await asyncio.sleep(0.3)
        # The batch still runs: the dead connection was replaced at checkout.
        assert await writer_pid(db) != first
    finally:
        await db.dispose()
        await admin.dispose()
