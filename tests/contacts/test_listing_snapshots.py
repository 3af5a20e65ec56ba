"""Unfiltered pages of GET /v1/contacts are kept per process on SQLite while nothing has been
committed to the file (storage/snapshot_cache.py): whatever writes next, by the API or by
another program, the next read shows it."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from contacts_api.contacts import fast_read
from contacts_api.contacts import manage_repository as repo
from contacts_api.paging import Page
from contacts_api.storage.engine import Database
from contacts_api.storage.snapshot_cache import SnapshotCache
from tests.contacts.helpers import (
    Client,
    create,
    list_contacts,
    set_columns,
    settings,  # noqa: F401  (fixture: no rate limit)
)
from tests.factories import AccountFixture, new_account


async def listed(client: Client, account: AccountFixture, **params: Any) -> list[Any]:
    response = await list_contacts(client, account, **params)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return [(c["email"], c["firstName"], data["count"]) for c in data["contacts"]]


async def test_a_page_read_again_shows_each_api_write_since(client: Client, db: Database) -> None:
    account = await new_account(db)
    first = await create(client, account, email="a@x.test", firstName="Ann")
    assert await listed(client, account) == [("a@x.test", "Ann", 1)]
    assert await listed(client, account) == [("a@x.test", "Ann", 1)]

    await create(client, account, email="b@x.test", firstName="Bob")
    assert await listed(client, account) == [("b@x.test", "Bob", 2), ("a@x.test", "Ann", 2)]

    update = {"id": first["id"], "firstName": "Anna"}
    assert (await client.put("/v1/contacts", json=update, headers=account.headers)).is_success
    assert await listed(client, account, orderColumn="id", orderBy="asc") == [
        ("a@x.test", "Anna", 2),
        ("b@x.test", "Bob", 2),
    ]

    upsert = {"email": "b@x.test", "firstName": "Bobby"}
    assert (await client.post("/v1/contacts", json=upsert, headers=account.headers)).is_success
    assert await listed(client, account, orderColumn="id", orderBy="asc") == [
        ("a@x.test", "Anna", 2),
        ("b@x.test", "Bobby", 2),
    ]

    deleted = await client.delete(
        "/v1/contacts", params={"id": first["id"]}, headers=account.headers
    )
    assert deleted.is_success, deleted.text
    remaining = await listed(client, account, orderColumn="id", orderBy="asc")
    assert remaining == [("b@x.test", "Bobby", 1)]


async def test_a_write_by_another_program_shows_at_once(client: Client, db: Database) -> None:
    """No write path has to tell the cache: a commit to the file by anyone is seen."""
    account = await new_account(db)
    contact = await create(client, account, email="o@x.test", firstName="Old")
    assert await listed(client, account) == [("o@x.test", "Old", 1)]
    if db.is_sqlite:
        outside = sqlite3.connect(make_url(db.url).database or "")
        with outside:
            outside.execute("UPDATE contact SET first_name = 'New' WHERE id = ?", (contact["id"],))
        outside.close()
    else:
        await set_columns(db, contact["id"], first_name="New")
    assert await listed(client, account) == [("o@x.test", "New", 1)]


async def test_pages_are_kept_apart_by_account_order_and_page(client: Client, db: Database) -> None:
    acme = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    for name in ("Cy", "Di", "Ed"):
        await create(client, acme, email=f"{name.lower()}@acme.test", firstName=name)
    await create(client, other, email="zed@other.test", firstName="Zed")
    for _ in range(2):  # the second round is answered from what the first kept
        assert [n for _, n, _ in await listed(client, acme)] == ["Ed", "Di", "Cy"]
        assert [n for _, n, _ in await listed(client, other)] == ["Zed"]
        oldest_first = await listed(client, acme, orderColumn="id", orderBy="asc")
        assert [n for _, n, _ in oldest_first] == ["Cy", "Di", "Ed"]
        # Only the direction differs from the default order (createdAt, desc).
        by_creation = await listed(client, acme, orderColumn="createdAt", orderBy="asc")
        assert [n for _, n, _ in by_creation] == ["Cy", "Di", "Ed"]
        assert [n for _, n, _ in await listed(client, acme, limit=2)] == ["Ed", "Di"]
        assert [n for _, n, _ in await listed(client, acme, limit=2, page=1)] == ["Cy"]
        by_name = await listed(client, acme, orderColumn="firstName", orderBy="asc", limit=1)
        assert [n for _, n, _ in by_name] == ["Cy"]
        assert await listed(client, acme, page=5) == []


async def test_an_unchanged_file_answers_the_page_kept(client: Client, db: Database) -> None:
    """The same page object while nothing is committed; a new one after any commit."""
    account = await new_account(db)
    await create(client, account, email="k@x.test")
    order, page = repo.ContactOrder(), Page(0, 50)

    async def read() -> Any:
        return await db.raw_read(lambda r: fast_read.list_page(r, account.account_id, order, page))

    first, again = await read(), await read()
    assert again is first if db.is_sqlite else again == first
    await create(client, account, email="l@x.test")
    after = await read()
    assert after is not first
    assert [c.email for c in after.contacts] == ["l@x.test", "k@x.test"]


def test_the_cache_keeps_a_value_for_its_version_and_drops_the_oldest() -> None:
    cache: SnapshotCache[str] = SnapshotCache(max_entries=2)
    conn, other = object(), object()
    cache.put("a", (conn, 1), "page a")
    assert cache.get("a", (conn, 1)) == "page a"
    assert cache.get("a", (conn, 2)) is None  # committed to since
    assert cache.get("a", (other, 1)) is None  # another connection's 1 is another file state
    cache.put("b", (conn, 1), "page b")
    assert cache.get("a", (conn, 1)) == "page a"  # now the most recently used
    cache.put("c", (conn, 1), "page c")
    assert cache.get("b", (conn, 1)) is None  # the least recently used went
    assert (cache.get("a", (conn, 1)), cache.get("c", (conn, 1))) == ("page a", "page c")


async def test_a_new_reader_connection_never_answers_an_old_ones_page(
    client: Client, db: Database
) -> None:
    """data_version numbers are per connection: a fresh one says 2 like the last one did,
    whatever was committed in between."""
    if not db.is_sqlite:
        pytest.skip("SQLite's reader connection only")
    account = await new_account(db)
    contact = await create(client, account, email="r@x.test", firstName="Old")
    order, page = repo.ContactOrder(), Page(0, 50)

    async def first_name() -> str | None:
        listing = await db.raw_read(
            lambda r: fast_read.list_page(r, account.account_id, order, page)
        )
        return listing.contacts[0].firstName

    assert await first_name() == "Old"
    await set_columns(db, contact["id"], first_name="New")
    assert await first_name() == "New"
    await set_columns(db, contact["id"], first_name="Old")
    assert await first_name() == "Old"  # version 4 of this connection, say
    reader = db._inline_reader
    assert reader is not None
    reader.close()  # as after an error: the next read opens another connection
    db._inline_reader = None
    await set_columns(db, contact["id"], first_name="Newest")
    assert await first_name() == "Newest"
