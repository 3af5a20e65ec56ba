"""The maintained per-account count of live contacts (migration 0005) that GET /v1/contacts
answers unfiltered: right after every write path, on both databases, and counted at
migration time."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contacts_api.bulk_jobs import import_file
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_live_count_table, contact_table
from tests.contacts.helpers import (
    Client,
    create,
    list_contacts,
    settings,  # noqa: F401  (fixture: no rate limit)
)
from tests.contacts.test_bulk_cli import run_cli
from tests.factories import AccountFixture, new_account


async def exact_live(db: Database, account_id: int) -> int:
    query = sa.select(sa.func.count()).where(
        contact_table.c.account_id == account_id, contact_table.c.deleted_at.is_(None)
    )
    async with db.read() as conn:
        return int((await conn.execute(query.select_from(contact_table))).scalar_one())


async def maintained(db: Database, account_id: int) -> int:
    live = contact_live_count_table.c
    query = sa.select(sa.func.coalesce(sa.func.sum(live.live), 0)).where(
        live.account_id == account_id
    )
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def assert_counts(client: Client, db: Database, account: AccountFixture, n: int) -> None:
    """The listing's count (unfiltered and filtered), the counter and the rows all agree."""
    assert await exact_live(db, account.account_id) == n
    assert await maintained(db, account.account_id) == n
    listed = (await list_contacts(client, account, limit=1)).json()["data"]
    assert listed["count"] == n
    assert len(listed["contacts"]) == min(n, 1)
    # A filter matching every contact takes the exact (scanned) count: the same number.
    every = "POTENTIAL,QUALIFIED,DISQUALIFIED"
    filtered = (await list_contacts(client, account, statuses=every)).json()["data"]
    assert filtered["count"] == n


async def test_count_follows_every_write_path(client: Client, db: Database, tmp_path: Path) -> None:
    account = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    await assert_counts(client, db, account, 0)

    # Single creates, and an upsert of an existing email (no new contact).
    first = await create(client, account, email="a@x.test")
    await create(client, account, phoneNumber="+15550000001")
    again = await client.post("/v1/contacts", json={"email": "A@x.test"}, headers=account.headers)
    assert again.status_code == 200
    await assert_counts(client, db, account, 2)

    # A create with an Idempotency-Key (one insert outside the group commit), and its replay.
    keyed = {**account.headers, "Idempotency-Key": "count-once"}
    for expected in (201, 201):
        response = await client.post("/v1/contacts", json={"email": "k@x.test"}, headers=keyed)
        assert response.status_code == expected
    await assert_counts(client, db, account, 3)

    # Concurrent creates: group-committed batches, some of them upserts of one email.
    async def post(i: int) -> int:
        body = {"email": f"c{i % 20}@x.test"}
        response = await client.post("/v1/contacts", json=body, headers=account.headers)
        return response.status_code

    statuses = await asyncio.gather(*(post(i) for i in range(40)))
    assert sorted(set(statuses)) == [200, 201]
    await assert_counts(client, db, account, 23)

    # The bulk endpoint: 5 new, 1 update of an existing contact, 1 invalid item.
    items: list[dict[str, Any]] = [{"email": f"b{i}@x.test"} for i in range(5)]
    items += [{"email": "a@x.test", "firstName": "Ann"}, {"email": "not-an-email"}]
    response = await client.post("/v1/contacts/bulk", json=items, headers=account.headers)
    assert response.status_code == 200, response.text
    await assert_counts(client, db, account, 28)

    # The import: 6 new rows, 1 existing email, in batches of 4.
    path = tmp_path / "leads.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["email"])
        writer.writerows([[f"i{i}@x.test"] for i in range(6)] + [["b0@x.test"]])
    summary = await import_file(db, path, account.name, batch_size=4)
    assert (summary.created, summary.failed) == (6, 0)
    await assert_counts(client, db, account, 34)

    # PUT changes nothing countable.
    body = {"id": first["id"], "status": "QUALIFIED", "email": "a2@x.test"}
    assert (await client.put("/v1/contacts", json=body, headers=account.headers)).is_success
    await assert_counts(client, db, account, 34)

    # Soft delete counts down once; deleting it again is a 404 and counts nothing.
    for expected_status in (200, 404):
        response = await client.delete(
            "/v1/contacts", params={"id": first["id"]}, headers=account.headers
        )
        assert response.status_code == expected_status
    await assert_counts(client, db, account, 33)

    # The deleted contact's email is free again: a create of it is a new contact.
    await create(client, account, email="a2@x.test")
    await assert_counts(client, db, account, 34)

    # Another account's writes never moved this count, and its own is right.
    await create(client, other, email="a@x.test")
    await assert_counts(client, db, other, 1)
    await assert_counts(client, db, account, 34)


async def test_writes_from_outside_the_server_are_counted(client: Client, db: Database) -> None:
    """Deletes and moves are counted by triggers: direct SQL (a hard delete, an undelete,
    moving a contact between accounts) counts too. (Inserts by hand are counted only on
    PostgreSQL: see test_db_recount_counts_contacts_inserted_by_hand.)"""
    account = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    ids = [(await create(client, account, email=f"d{i}@x.test"))["id"] for i in range(4)]
    c = contact_table.c
    async with db.transaction() as conn:
        await conn.execute(sa.delete(contact_table).where(c.id == ids[0]))
        await conn.execute(
            sa.update(contact_table).where(c.id == ids[1]).values(deleted_at=sa.func.now())
        )
    await assert_counts(client, db, account, 2)
    async with db.transaction() as conn:
        await conn.execute(sa.update(contact_table).where(c.id == ids[1]).values(deleted_at=None))
        await conn.execute(
            sa.update(contact_table)
            .where(c.id == ids[2])
            .values(account_id=other.account_id, user_id=other.user_id)
        )
    await assert_counts(client, db, account, 2)
    await assert_counts(client, db, other, 1)


async def test_db_recount_counts_contacts_inserted_by_hand(
    client: Client, db: Database, database_url: str
) -> None:
    """A contact inserted by hand: counted by PostgreSQL's trigger, not on SQLite (migration
    0006), until `contacts-api db recount`, which gets every account right on both."""
    account = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    await create(client, account, email="r0@x.test")
    await create(client, other, email="r1@x.test")
    gone = await create(client, other, email="r2@x.test")
    await client.delete("/v1/contacts", params={"id": gone["id"]}, headers=other.headers)
    async with db.transaction() as conn:
        await conn.execute(
            sa.insert(contact_table).values(
                account_id=account.account_id,
                user_id=account.user_id,
                status="POTENTIAL",
                preview_id="contact_by_hand",
                blocked_by_recaptcha=False,
                joined_time=sa.func.now(),
                tracking={},
                created_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
        )
    assert await maintained(db, account.account_id) == (1 if db.is_sqlite else 2)

    result = await run_cli(database_url, "db", "recount")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"accounts": 2, "contacts": 3}
    await assert_counts(client, db, account, 2)
    await assert_counts(client, db, other, 1)


async def test_migration_counts_the_contacts_already_there(
    client: Client, db: Database, database_url: str
) -> None:
    account = await new_account(db)
    ids = [(await create(client, account, email=f"m{i}@x.test"))["id"] for i in range(5)]
    await client.delete("/v1/contacts", params={"id": ids[0]}, headers=account.headers)
    engine = migrate.sync_engine(database_url)
    config = migrate.alembic_config()
    try:
        from alembic import command

        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")
        with engine.begin() as connection:  # contacts written while nothing counted them
            connection.execute(
                sa.update(contact_table)
                .where(contact_table.c.id == ids[1])
                .values(deleted_at=sa.func.now())
            )
    finally:
        engine.dispose()
        migrate.upgrade(database_url)
    await assert_counts(client, db, account, 3)


async def test_postgresql_writers_of_one_account_do_not_queue_on_the_counter(
    client: Client, db: Database, database_url: str
) -> None:
    """Two open transactions inserting into one account: the second commits while the first
    still holds its counter row (each connection adds to its own slot of the account)."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite has one writer at a time by design")
    account = await new_account(db)
    engine = migrate.sync_engine(database_url)
    insert = sa.text(
        "INSERT INTO contact (account_id, user_id, status, preview_id, blocked_by_recaptcha,"
        " joined_time, tracking, created_at, updated_at)"
        " VALUES (:a, :u, 'POTENTIAL', :p, false, now(), '{}', now(), now())"
    )
    connections: list[sa.Connection] = []
    try:
        first = engine.connect()
        connections.append(first)
        pid = first.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        while True:  # a second connection on another slot (pids equal mod 16 share one)
            second = engine.connect()
            connections.append(second)
            if second.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() % 16 != pid % 16:
                break
        first.execute(insert, {"a": account.account_id, "u": account.user_id, "p": "slot_a"})
        second.execute(sa.text("SET lock_timeout = '2s'"))
        second.execute(insert, {"a": account.account_id, "u": account.user_id, "p": "slot_b"})
        second.commit()  # would raise LockNotAvailable if it queued behind `first`
        first.commit()
    finally:
        for conn in connections:
            conn.close()
        engine.dispose()
    await assert_counts(client, db, account, 2)
