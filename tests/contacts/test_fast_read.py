"""The hot reads on Database.raw_read (contacts/fast_read.py): the same answers as the Core
path, on both databases; on SQLite they never wait on the event loop for a lock, and only
bounded reads take that path."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from sqlalchemy.engine import make_url

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import fast_read
from contacts_api.contacts import manage_repository as repo
from contacts_api.contacts import manage_service as service
from contacts_api.contacts.manage_schemas import ContactList
from contacts_api.contacts.service import contact_read
from contacts_api.errors import NotFound
from contacts_api.paging import Page
from contacts_api.storage.engine import Database
from tests.contacts.helpers import (
    Client,
    create,
    list_contacts,
    set_columns,
    settings,  # noqa: F401  (fixture: no rate limit)
)
from tests.factories import AccountFixture, new_account, new_event
from tests.loop_ticks import LoopTicks

ORDERS = [repo.ContactOrder(column, desc) for column in service.ORDER_COLUMN.values()
          for desc in (True, False)]  # fmt: skip


async def varied_contacts(client: Client, db: Database) -> tuple[AccountFixture, list[int]]:
    account = await new_account(db)
    await new_event(db, account, "Demo", "acme/demo")
    full = await create(
        client, account, firstName="Jane", lastName="Doe", email="jane@x.test",
        phoneNumber="+15551234567", status="QUALIFIED", tag="lead-2024", eventName="Demo",
        joinedTime="0999-01-15T10:00:00.123Z", utm="utm_source=google&x=1", country="US",
        timeZone="America/New_York", ipAddress="192.168.1.1",
        referrerUrl="https://example.com/?utm_medium=cpc",
    )  # fmt: skip
    ids = [full["id"]]
    # An upsert: the tracking is rewritten by the update path, not the create's.
    upsert = {"email": "jane@x.test", "utm": "utm_source=bing&y=é"}
    assert (await client.post("/v1/contacts", json=upsert, headers=account.headers)).is_success
    update = {"id": ids[0], "utm": "utm_medium=mail&z=ü"}
    assert (await client.put("/v1/contacts", json=update, headers=account.headers)).is_success
    ids.append((await create(client, account, phoneNumber="+15550000000"))["id"])
    for i in range(4):
        ids.append(
            (await create(client, account, email=f"c{i}@x.test", lastName=f"L{i % 2}"))["id"]
        )
    body = {"id": full["id"], "secondary_email": "j@work.test", "secondary_phoneNumber": "+1555"}
    assert (await client.put("/v1/contacts", json=body, headers=account.headers)).is_success
    deleted = ids.pop()
    await client.delete("/v1/contacts", params={"id": deleted}, headers=account.headers)
    return account, ids


def encoded(value: Any) -> bytes:
    return msgspec.json.encode(value)


async def test_listing_and_detail_answer_what_the_core_path_answers(
    client: Client, db: Database
) -> None:
    account, ids = await varied_contacts(client, db)
    principal = Principal(account.account_id, account.user_id, key_id=0)
    for order in ORDERS:
        for page in (Page(0, 2), Page(1, 2), Page(0, 100), Page(9, 50)):
            fast = await db.raw_read(
                lambda r, o=order, p=page: fast_read.list_page(r, account.account_id, o, p)
            )
            async with db.read() as conn:
                listing = await repo.list_contacts(
                    conn, account.account_id, repo.NO_FILTER, order, page
                )
            core = ContactList(listing.count, [contact_read(row) for row in listing.rows])
            assert encoded(fast) == encoded(core), (order, page)
    for contact_id in [*ids, ids[-1] + 1]:
        async with db.read() as conn:
            try:
                core_detail: Any = await service.contact_detail(conn, principal, contact_id)
            except NotFound as exc:
                core_detail = exc
        try:
            fast_detail: Any = await db.raw_read(
                lambda r, i=contact_id: fast_read.contact_detail(r, account.account_id, i)
            )
        except NotFound as exc:
            fast_detail = exc
        if isinstance(core_detail, NotFound):
            assert isinstance(fast_detail, NotFound)
        else:
            assert encoded(fast_detail) == encoded(core_detail)
    # Another account sees none of it.
    other = await new_account(db, "other", "owner@other.test")
    with pytest.raises(NotFound):
        await db.raw_read(lambda r: fast_read.contact_detail(r, other.account_id, ids[0]))
    empty = await db.raw_read(
        lambda r: fast_read.list_page(r, other.account_id, repo.ContactOrder(), Page())
    )
    assert (empty.count, empty.contacts) == (0, [])


async def test_times_stored_without_fractions_read_the_same(client: Client, db: Database) -> None:
    """Rows written by other tools may hold `2024-01-15 10:00:00` (no fraction) on SQLite."""
    account = await new_account(db)
    contact = await create(client, account, email="t@x.test")
    if db.is_sqlite:
        path = make_url(db.url).database or ""
        with sqlite3.connect(path) as conn:
            conn.execute(
                "UPDATE contact SET joined_time = '2024-01-15 10:00:00' WHERE id = ?",
                (contact["id"],),
            )
    else:
        from datetime import UTC, datetime

        await set_columns(db, contact["id"], joined_time=datetime(2024, 1, 15, 10, tzinfo=UTC))
    listed = (await list_contacts(client, account)).json()["data"]["contacts"]
    detail = await client.get(
        "/v1/contacts/detail", params={"contactId": contact["id"]}, headers=account.headers
    )
    assert listed[0]["joinedTime"] == detail.json()["data"]["joinedTime"]
    assert listed[0]["joinedTime"] == "2024-01-15T10:00:00.000Z"


async def test_only_bounded_listings_take_the_fast_path(
    client: Client, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches, filters (an exact count) and deep pages stay off the event loop."""
    account = await new_account(db)
    await create(client, account, email="s@x.test", firstName="Sam")
    calls: list[int] = []
    original = Database.raw_read

    async def counting(self: Database, read: Any) -> Any:
        calls.append(1)
        return await original(self, read)

    monkeypatch.setattr(Database, "raw_read", counting)
    cases: list[tuple[dict[str, Any], bool]] = [
        ({}, True),
        ({"limit": 100, "page": 99}, True),  # ends at row 10,000
        ({"orderBy": "asc", "orderColumn": "lastName", "page": 3}, True),
        ({"limit": 100, "page": 100}, False),  # deep: skips 10,000 index entries
        ({"search": "sam"}, False),
        ({"statuses": "POTENTIAL"}, False),
        ({"eventIds": "1"}, False),
        ({"userId": account.user_id}, False),
        ({"timeFrom": "2020-01-01T00:00:00Z"}, False),
    ]
    for params, fast in cases:
        calls.clear()
        response = await list_contacts(client, account, **params)
        assert response.status_code == 200, response.text
        assert bool(calls) is fast, params


async def test_sqlite_inline_read_does_not_wait_for_a_writer(client: Client, db: Database) -> None:
    """WAL: a writer holding the lock (mid-transaction) never delays the inline read, which
    sees the last committed state."""
    if not db.is_sqlite:
        pytest.skip("SQLite's inline reader only")
    account = await new_account(db)
    contact = await create(client, account, email="w@x.test")
    writer = sqlite3.connect(make_url(db.url).database or "", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "UPDATE contact SET first_name = 'Uncommitted' WHERE id = ?", (contact["id"],)
        )
        # The lock is released only below: a read that waited for it would time out and fail.
        detail = await db.raw_read(
            lambda r: fast_read.contact_detail(r, account.account_id, contact["id"])
        )
        page = await db.raw_read(
            lambda r: fast_read.list_page(r, account.account_id, repo.ContactOrder(), Page())
        )
        assert detail.firstName is None
        listed = msgspec.json.decode(encoded(page.contacts))
        assert (page.count, listed[0]["id"], listed[0]["firstName"]) == (1, contact["id"], None)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


async def test_sqlite_busy_inline_read_waits_in_a_thread_not_on_the_loop(
    app: Litestar, client: Client, db: Database
) -> None:
    """An exclusive lock held elsewhere makes even a WAL reader busy: the read is answered
    once the lock goes (200, never a 5xx), and the event loop keeps running meanwhile."""
    if not db.is_sqlite:
        pytest.skip("SQLite's inline reader only")
    account = await new_account(db)
    contact = await create(client, account, email="b@x.test")
    params = {"contactId": contact["id"]}
    # The key is now cached: the next request needs the database for the detail read only.
    assert (
        await client.get("/v1/contacts/detail", params=params, headers=account.headers)
    ).is_success
    # In WAL mode every open connection holds a shared lock: close them all, so that one
    # connection can take the exclusive lock that makes readers busy.
    path = make_url(db.url).database or ""

    async def take_lock() -> sqlite3.Connection:
        await app.state.db.dispose()
        await db.dispose()
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("UPDATE contact SET last_name = 'Held' WHERE id = ?", (contact["id"],))
        return holder

    # The lock is held until the loop has ticked ten times with the read still waiting:
    # counted, not timed (a read that blocked the loop would be over before any tick).
    holder = await take_lock()
    async with LoopTicks() as ticks:
        read = asyncio.create_task(
            db.raw_read(lambda r: fast_read.contact_detail(r, account.account_id, contact["id"]))
        )
        try:
            async with asyncio.timeout(5):
                await ticks.ten_more()
            assert not read.done(), "the read did not wait for the lock, or blocked the loop"
        finally:
            holder.close()
        detail = await read
    assert detail.lastName == "Held"

    holder = await take_lock()
    threading.Timer(0.3, holder.close).start()  # the test client blocks this loop
    response = await client.get("/v1/contacts/detail", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    listed = await list_contacts(client, account)
    assert listed.json()["data"]["count"] == 1


async def store_tracking(db: Database, contact_id: int, text: str) -> None:
    """Write a tracking column's text as another tool might."""
    if db.is_sqlite:
        with sqlite3.connect(make_url(db.url).database or "") as conn:
            conn.execute("UPDATE contact SET tracking = ? WHERE id = ?", (text, contact_id))
    else:
        async with db.transaction() as conn:
            await conn.exec_driver_sql(
                "UPDATE contact SET tracking = CAST($1 AS JSON) WHERE id = $2", (text, contact_id)
            )


@pytest.mark.parametrize(
    ("stored", "wire"),
    [
        # json.dumps' spaces, non-ASCII escaped: the same object, keys in their order.
        ('{"utm_source": "g\\u00e9", "utm_medium": "cpc"}',
         {"utm_source": "g\u00e9", "utm_medium": "cpc"}),
        ("null", {}),  # as the Core path: no tracking is an empty object
    ],
)  # fmt: skip
async def test_tracking_stored_by_another_tool_reads_as_the_core_path_reads_it(
    client: Client, db: Database, stored: str, wire: dict[str, str]
) -> None:
    """The hot reads pass the stored tracking text through when it is a JSON object."""
    account = await new_account(db)
    contact = await create(client, account, email="t@x.test")
    await store_tracking(db, contact["id"], stored)
    listed = (await list_contacts(client, account)).json()["data"]["contacts"]
    detail = await client.get(
        "/v1/contacts/detail", params={"contactId": contact["id"]}, headers=account.headers
    )
    assert listed[0]["tracking"] == wire
    assert list(listed[0]["tracking"]) == list(wire)
    assert detail.json()["data"]["tracking"] == wire


@pytest.mark.parametrize("stored", ["{bad", '{"a": "b"', "", "[1]"])
async def test_tracking_stored_broken_is_a_500_never_a_broken_body(
    client: Client, db: Database, stored: str
) -> None:
    """Text no writer of ours stores (SQLite cannot stop another tool): the Core path's 500,
    not a 200 whose body is not JSON."""
    if not db.is_sqlite:
        pytest.skip("PostgreSQL's json type refuses malformed text itself")
    account = await new_account(db)
    contact = await create(client, account, email="t@x.test")
    await store_tracking(db, contact["id"], stored)
    listed = await list_contacts(client, account)
    detail = await client.get(
        "/v1/contacts/detail", params={"contactId": contact["id"]}, headers=account.headers
    )
    for response in (listed, detail):
        assert response.status_code == 500
        assert response.json() == {"message": "Internal server error"}


@pytest.mark.parametrize(
    ("stored", "wire"),
    [
        ("2024-01-15 10:00:00+00", "2024-01-15T10:00:00.000Z"),
        ("2024-01-15 10:00:00.1+00", "2024-01-15T10:00:00.100Z"),
        ("2024-01-15 10:00:00.12+00", "2024-01-15T10:00:00.120Z"),
        ("2024-01-15 10:00:00.999999+00", "2024-01-15T10:00:00.999Z"),
        ("0999-01-15 10:00:00.5+00", "0999-01-15T10:00:00.500Z"),
        ("2024-01-15 12:00:00+02", "2024-01-15T10:00:00.000Z"),  # not UTC: parsed
    ],
)
def test_postgresql_timestamp_text_to_wire(stored: str, wire: str) -> None:
    assert fast_read._postgresql_time(stored) == wire
