"""A SQLite database locked from outside the server (a backup tool, a `sqlite3` shell with a
write transaction open) for longer than the server waits: writes answer a clean 503, as in an
outage, and the server carries on once the lock goes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from contacts_api.app import create_app
from contacts_api.settings import Settings
from contacts_api.storage import engine
from contacts_api.storage.engine import Database
from tests.factories import new_account


@contextmanager
def locked_from_outside(db: Database) -> Iterator[None]:
    """An exclusive lock held by another connection (WAL readers still read)."""
    holder = sqlite3.connect(make_url(db.url).database or "", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_database_locked_from_outside_answers_503_and_recovers(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite's file lock; PostgreSQL's outage has tests/test_database_outage.py")
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 300)  # 10 s in service
    account = await new_account(db)
    async with AsyncTestClient(app=create_app(settings)) as client:
        created = await client.post(
            "/v1/contacts", json={"email": "a@x.io"}, headers=account.headers
        )
        contact = {"id": created.json()["data"]["contact"]["id"], "firstName": "B"}
        with capture_logs() as logs, locked_from_outside(db):
            during = [
                await client.post(
                    "/v1/contacts", json={"email": "b@x.io"}, headers=account.headers
                ),
                await client.put("/v1/contacts", json=contact, headers=account.headers),
                await client.get("/v1/contacts", headers=account.headers),
            ]
        after = await client.post("/v1/contacts", json={"email": "b@x.io"}, headers=account.headers)

    assert [r.status_code for r in during] == [503, 503, 200]
    assert during[0].json() == during[1].json() == {"message": "Service temporarily unavailable"}
    assert during[2].json()["data"]["count"] == 1
    problems = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert [(e["event"], e["log_level"], e.get("error")) for e in problems] == [
        ("database unavailable", "warning", "OperationalError: database is locked")
    ] * 2
    assert not any("exc_info" in e for e in logs)  # one line each, no traceback
    assert after.status_code == 201


async def test_reads_kept_out_longer_than_the_wait_answer_503(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exclusive locking mode held elsewhere keeps even WAL readers out: the hot reads
    wait in a thread (tests/contacts/test_fast_read.py), then answer 503 as the writes do."""
    if not db.is_sqlite:
        pytest.skip("SQLite's file lock; PostgreSQL's outage has tests/test_database_outage.py")
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    account = await new_account(db)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        created = await client.post(
            "/v1/contacts", json={"email": "a@x.io"}, headers=account.headers
        )
        detail = {"contactId": created.json()["data"]["contact"]["id"]}
        # Every open connection holds a shared lock in WAL mode: close them all first.
        await app.state.db.dispose()
        await db.dispose()
        holder = sqlite3.connect(make_url(db.url).database or "", isolation_level=None)
        try:
            holder.execute("PRAGMA locking_mode=EXCLUSIVE")
            holder.execute("UPDATE contact SET last_name = 'Held'")
            with capture_logs() as logs:
                during = [
                    await client.get("/v1/contacts/detail", params=detail, headers=account.headers),
                    await client.get("/v1/contacts", headers=account.headers),
                ]
        finally:
            holder.close()
        after = await client.get("/v1/contacts/detail", params=detail, headers=account.headers)

    assert [r.status_code for r in during] == [503, 503]
    assert all(r.json() == {"message": "Service temporarily unavailable"} for r in during)
    assert [(e["event"], e["log_level"]) for e in logs if e["log_level"] != "debug"] == [
        ("database unavailable", "warning")
    ] * 2
    assert after.json()["data"]["lastName"] == "Held"
