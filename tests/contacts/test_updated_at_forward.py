"""A contact's `updatedAt` only moves forward (timeutil.after), and an upsert that loses its
insert to a contact deleted again at once runs again (storage/retry.RaceLost).

Racing writers stamped a change before it waited for the contact's lock (PUT, DELETE) or with
its request's arrival (creates): 15-18 of 20 racing PUTs left an `updatedAt` older than one
already answered, and a receiver keeping the newest event kept an older state. Here the
stored stamp is set ahead of the clock, as a change committed by a writer whose clock read
later would leave it: each kind of change must still stamp after it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from contacts_api.contacts import bulk as bulk_module
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table
from contacts_api.timeutil import format_time, utcnow
from tests.contacts.helpers import Client, create, set_columns, settings  # noqa: F401
from tests.factories import new_account


async def change(client: Client, headers: dict[str, str], how: str, contact: dict[str, Any]) -> Any:
    email = contact["email"]
    if how == "PUT":
        return await client.put(
            "/v1/contacts", json={"id": contact["id"], "lastName": "Lee"}, headers=headers
        )
    if how == "DELETE":
        return await client.delete("/v1/contacts", params={"id": contact["id"]}, headers=headers)
    if how == "POST":
        return await client.post(
            "/v1/contacts", json={"email": email, "lastName": "Lee"}, headers=headers
        )
    return await client.post(
        "/v1/contacts/bulk", json=[{"email": email, "lastName": "Lee"}], headers=headers
    )


@pytest.mark.parametrize("how", ["PUT", "DELETE", "POST", "bulk"])
async def test_a_change_is_stamped_after_the_last_one_stored(
    client: Client, db: Database, how: str
) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test", firstName="Ann")
    ahead = utcnow() + timedelta(hours=1)  # the last change, stamped by a clock read later
    await set_columns(db, contact["id"], updated_at=ahead)

    response = await change(client, account.headers, how, contact)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    answered = data["results"][0]["contact"] if how == "bulk" else data["contact"]
    expected = format_time(ahead + timedelta(milliseconds=1))
    assert answered["updatedAt"] == expected
    if how == "DELETE":
        assert answered["deletedAt"] == expected
    async with db.read() as conn:
        stored = await conn.scalar(
            sa.select(contact_table.c.updated_at).where(contact_table.c.id == contact["id"])
        )
    assert format_time(stored) == expected


async def test_a_bulk_upsert_losing_to_a_contact_deleted_at_once_creates_it(
    client: Client, db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the bulk insert lost the email to a create that committed first, and that
    contact was deleted before the bulk request looked it up: a KeyError, a 500."""
    if db.is_sqlite:
        pytest.skip("SQLite's writers run one at a time: no such interleaving")
    account = await new_account(db)
    real_insert = bulk_module.bulk_repo.insert_contacts
    other = migrate.sync_engine(database_url)  # another client (the app runs on its own loop)
    calls = 0

    async def insert_between_a_create_and_a_delete(conn: Any, rows: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            return await real_insert(conn, rows, **kw)
        now = utcnow()
        with other.begin() as writer:  # a concurrent create, committed first
            winner = writer.scalar(
                sa.insert(contact_table)
                .values(
                    account_id=account.account_id,
                    user_id=account.user_id,
                    email="raced@x.test",
                    email_key="raced@x.test",
                    status="POTENTIAL",
                    preview_id="contact_raced0001",
                    blocked_by_recaptcha=False,
                    joined_time=now,
                    tracking={},
                    created_at=now,
                    updated_at=now,
                )
                .returning(contact_table.c.id)
            )
        inserted = await real_insert(conn, rows, **kw)  # loses the email
        with other.begin() as writer:  # and the winner is deleted again
            writer.execute(
                sa.update(contact_table)
                .where(contact_table.c.id == winner)
                .values(deleted_at=utcnow(), email_key=None)
            )
        return inserted

    monkeypatch.setattr(
        bulk_module.bulk_repo, "insert_contacts", insert_between_a_create_and_a_delete
    )
    try:
        response = await client.post(
            "/v1/contacts/bulk", json=[{"email": "raced@x.test"}], headers=account.headers
        )
    finally:
        other.dispose()
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["data"]["results"]] == [201]
    assert calls == 2  # it ran again, and created the contact
