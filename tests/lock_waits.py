"""Waiting until another transaction is blocked on a lock, on PostgreSQL as PostgreSQL reports
it, instead of sleeping a guessed time (a sleep too short lets the race the test is about not
happen, and the test still passes). SQLite has no such report: there, a moment is slept."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from contacts_api.storage.engine import Database

_LOCK_WAITERS = sa.text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def until_a_writer_waits(db: Database) -> None:
    """PostgreSQL: until a session of this database waits on a lock (a row, or a unique
    index entry another transaction has not committed), as PostgreSQL itself reports it.

    SQLite runs one write transaction at a time: the other one takes its turn whenever it
    comes, and no lock of SQLite's shows a waiter, so it is given a moment to start."""
    if db.is_sqlite:
        await asyncio.sleep(0.3)
        return
    for _ in range(600):
        async with db.read() as conn:
            if (await conn.execute(_LOCK_WAITERS)).scalar():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("no writer ever waited on a lock")
