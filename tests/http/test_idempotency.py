"""Idempotency-Key on POST/PUT/DELETE: replay, mismatch, concurrency, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.idempotency import service as idempotency
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.models import idempotency_table
from contacts_api.timeutil import utcnow
from tests.conftest import make_settings
from tests.contacts.helpers import Client, create
from tests.factories import AccountFixture, count_contacts, new_account


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Enough budget that a burst of retries is never rate limited in these tests.
    return make_settings(database_url, rate_limit="100000/1")


def keyed(account: AccountFixture, key: str) -> dict[str, str]:
    return {**account.headers, "Idempotency-Key": key}


async def post(client: Client, account: AccountFixture, key: str, body: Any) -> Any:
    return await client.post("/v1/contacts", json=body, headers=keyed(account, key))


async def test_retry_replays_the_first_answer_byte_for_byte(client: Client, db: Database) -> None:
    account = await new_account(db)

    first = await post(client, account, "k-1", {"email": "a@x.test"})
    retry = await post(client, account, "k-1", {"email": "a@x.test"})

    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert await count_contacts(db, account.account_id) == 1


async def test_same_key_with_another_body_is_422(client: Client, db: Database) -> None:
    account = await new_account(db)
    await post(client, account, "k-1", {"email": "a@x.test"})

    other = await post(client, account, "k-1", {"email": "b@x.test"})
    other_route = await client.put(
        "/v1/contacts", json={"email": "a@x.test"}, headers=keyed(account, "k-1")
    )

    assert other.status_code == other_route.status_code == 422
    assert other.json() == {
        "message": "This Idempotency-Key was already used with a different request"
    }
    assert await count_contacts(db, account.account_id) == 1


async def test_fifty_concurrent_duplicates_make_one_contact(client: Client, db: Database) -> None:
    account = await new_account(db)
    body = {"email": "burst@x.test", "firstName": "Burst"}

    responses = await asyncio.gather(*(post(client, account, "burst", body) for _ in range(50)))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    originals = [r for r in responses if r.status_code == 201]
    assert originals
    assert all(r.content == originals[0].content for r in originals)
    assert all(
        r.json() == {"message": "A request with this Idempotency-Key is still in progress"}
        for r in responses
        if r.status_code == 409
    )
    assert await count_contacts(db, account.account_id) == 1
    replay = await post(client, account, "burst", body)
    assert replay.content == originals[0].content


async def test_running_first_request_makes_a_duplicate_409(client: Client, db: Database) -> None:
    account = await new_account(db)
    body = b'{"email":"a@x.test"}'
    fingerprint = idempotency.fingerprint("POST", "/v1/contacts", b"", body)
    await idempotency.claim(db, account.account_id, "busy", fingerprint, utcnow())

    response = await client.post(
        "/v1/contacts",
        content=body,
        headers={**keyed(account, "busy"), "content-type": "application/json"},
    )

    assert response.status_code == 409
    assert await count_contacts(db, account.account_id) == 0


async def test_a_claim_abandoned_by_a_dead_request_is_taken_over(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    body = b'{"email":"a@x.test"}'
    fingerprint = idempotency.fingerprint("POST", "/v1/contacts", b"", body)
    long_ago = utcnow() - idempotency.STALE_CLAIM - timedelta(seconds=1)
    await idempotency.claim(db, account.account_id, "dead", fingerprint, long_ago)

    response = await client.post(
        "/v1/contacts",
        content=body,
        headers={**keyed(account, "dead"), "content-type": "application/json"},
    )
    replay = await client.post(
        "/v1/contacts",
        content=body,
        headers={**keyed(account, "dead"), "content-type": "application/json"},
    )

    assert response.status_code == 201
    assert await count_contacts(db, account.account_id) == 1
    assert replay.headers.get("Idempotent-Replayed") == "true"  # the claim is now this one's
    assert replay.content == response.content


async def test_records_expire_after_a_day(client: Client, db: Database) -> None:
    account = await new_account(db)
    first = await post(client, account, "old", {"phoneNumber": "+1555"})
    async with db.transaction() as conn:
        await conn.execute(
            sa.update(idempotency_table).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    later = await post(client, account, "old", {"phoneNumber": "+1555"})
    assert first.status_code == later.status_code == 201
    assert later.json()["data"]["contact"]["id"] != first.json()["data"]["contact"]["id"]
    assert "idempotent-replayed" not in later.headers


async def test_client_errors_are_answers_and_are_replayed(client: Client, db: Database) -> None:
    account = await new_account(db)
    first = await post(client, account, "bad", {"email": "nope"})
    retry = await post(client, account, "bad", {"email": "nope"})
    assert first.status_code == retry.status_code == 400
    assert retry.content == first.content and retry.headers["idempotent-replayed"] == "true"


async def test_put_and_delete_are_replayed(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test")
    update = {"id": contact["id"], "firstName": "Ann"}

    put_first = await client.put("/v1/contacts", json=update, headers=keyed(account, "p"))
    put_again = await client.put("/v1/contacts", json=update, headers=keyed(account, "p"))
    params = {"id": contact["id"]}
    del_first = await client.delete("/v1/contacts", params=params, headers=keyed(account, "d"))
    del_again = await client.delete("/v1/contacts", params=params, headers=keyed(account, "d"))
    del_unkeyed = await client.delete("/v1/contacts", params=params, headers=account.headers)

    assert put_first.status_code == 200 and put_again.content == put_first.content
    assert del_first.status_code == del_again.status_code == 200
    assert del_again.content == del_first.content
    assert del_unkeyed.status_code == 404  # without the key, the delete really runs again


async def test_keys_are_per_account(client: Client, db: Database) -> None:
    acme = await new_account(db)
    globex = await new_account(db, "globex", "owner@globex.test")
    body = {"email": "a@x.test"}
    mine = await post(client, acme, "shared", body)
    theirs = await post(client, globex, "shared", body)
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["data"]["contact"]["accountId"] == globex.account_id


async def test_bad_key_or_credentials(client: Client, db: Database) -> None:
    account = await new_account(db)
    too_long = await post(client, account, "k" * 256, {"email": "a@x.test"})
    assert too_long.status_code == 400
    assert too_long.json()["message"]["details"]["formErrors"] == [
        "Idempotency-Key must be 1-255 characters"
    ]
    unauthenticated = await client.post(
        "/v1/contacts", json={"email": "a@x.test"}, headers={"Idempotency-Key": "k"}
    )
    assert unauthenticated.status_code == 401
    # Nothing was stored for the 401: the key still works for the real request.
    assert (await post(client, account, "k", {"email": "a@x.test"})).status_code == 201


async def test_failed_first_attempt_releases_the_key(database_url: str, db: Database) -> None:
    """A server error is not an answer to replay: the retry runs again."""
    account = await new_account(db)
    app = create_app(make_settings(database_url))
    broken: Litestar = app
    # Break the contact table for one request: the create fails with a 500.
    async with db.transaction() as conn:
        await conn.execute(sa.text("ALTER TABLE contact RENAME TO contact_away"))
    try:
        async with AsyncTestClient(app=broken) as test_client:
            failed = await post(test_client, account, "retry-me", {"email": "a@x.test"})
    finally:
        async with db.transaction() as conn:
            await conn.execute(sa.text("ALTER TABLE contact_away RENAME TO contact"))
    async with AsyncTestClient(app=app) as test_client:
        retried = await post(test_client, account, "retry-me", {"email": "a@x.test"})
    assert failed.status_code == 500
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


async def test_housekeeping_drops_dead_records_of_any_key(db: Database) -> None:
    from contacts_api.idempotency import repository

    account = await new_account(db)
    now = utcnow()
    await idempotency.claim(db, account.account_id, "expired", "f", now - timedelta(days=2))
    await idempotency.claim(db, account.account_id, "abandoned", "f", now - timedelta(hours=1))
    await idempotency.claim(db, account.account_id, "running", "f", now)
    async with db.transaction() as conn:
        purged = await repository.purge_dead(
            conn, expired_before=now, stale_before=now - idempotency.STALE_CLAIM, limit=100
        )
        left = (await conn.execute(sa.select(idempotency_table.c.key))).scalars().all()
    assert purged == 2
    assert left == ["running"]


async def test_housekeeping_goes_on_soon_while_it_finds_full_batches(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch a minute was a ceiling: with more keyed requests than that, expired records
    piled up for good. A full batch means more: the next one runs soon (here, at once)."""
    account = await new_account(db)
    now = utcnow()
    for n in range(5):
        await idempotency.claim(db, account.account_id, f"old{n}", "f", now - timedelta(days=2))
    monkeypatch.setattr(idempotency, "PURGE_BATCH", 2)
    monkeypatch.setattr(idempotency, "PURGE_CATCH_UP_SECONDS", 0.0)
    monkeypatch.setattr(idempotency, "_last_purge", float("-inf"))

    async def left_after_a_keyed_request(key: str) -> int:
        await idempotency.claim(db, account.account_id, key, "f", now)
        async with db.transaction() as conn:
            keys = (await conn.execute(sa.select(idempotency_table.c.key))).scalars().all()
        return sum(k.startswith("old") for k in keys)

    assert [await left_after_a_keyed_request(f"new{n}") for n in range(4)] == [3, 1, 0, 0]


async def test_oversized_body_with_a_key_is_still_413(client: Client, db: Database) -> None:
    account = await new_account(db)
    body = b'{"email":"a@x.test","utm":"' + b"x" * (1024 * 1024) + b'"}'
    headers = {**keyed(account, "big"), "content-type": "application/json"}
    response = await client.post("/v1/contacts", content=body, headers=headers)
    assert response.status_code == 413
    assert response.json() == {"message": "Request body too large (limit 1 MiB)"}
    assert await count_contacts(db, account.account_id) == 0
    small = await post(client, account, "big", {"email": "a@x.test"})
    assert small.status_code == 201  # nothing was stored under the key


async def test_oversized_body_on_a_route_that_reads_none_is_413_and_runs_nothing(
    client: Client, db: Database
) -> None:
    """DELETE never reads its body: with a key and 1 MiB of body it ran, stored nothing, and
    the retry with the same key ran again, to a 404."""
    account = await new_account(db)
    created = await post(client, account, "make", {"email": "d@x.test"})
    contact_id = created.json()["data"]["contact"]["id"]
    response = await client.request(
        "DELETE",
        "/v1/contacts",
        params={"id": contact_id},
        content=b"x" * (1024 * 1024 + 1),
        headers=keyed(account, "gone"),
    )
    assert response.status_code == 413
    assert await count_contacts(db, account.account_id) == 1
    deleted = await client.delete(
        "/v1/contacts", params={"id": contact_id}, headers=keyed(account, "gone")
    )
    assert deleted.status_code == 200, deleted.text


async def test_credentials_are_checked_before_the_key_itself(client: Client) -> None:
    response = await client.post(
        "/v1/contacts", json={"email": "a@x.test"}, headers={"Idempotency-Key": "k" * 256}
    )
    assert response.status_code == 401
    assert response.json() == {"message": "API key is required"}


async def test_replays_are_rate_limited_and_counted_once(database_url: str, db: Database) -> None:
    app = create_app(make_settings(database_url, rate_limit="3/60"))
    async with AsyncTestClient(app=app) as client:
        account = await new_account(db)
        first = await post(client, account, "once", {"email": "r@x.test"})
        assert first.status_code == 201
        assert first.headers["RateLimit-Remaining"] == "2"  # one request, one point
        replay = await post(client, account, "once", {"email": "r@x.test"})
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.headers["RateLimit-Remaining"] == "1"
        await post(client, account, "once", {"email": "r@x.test"})
        limited = await post(client, account, "once", {"email": "r@x.test"})
    assert limited.status_code == 429
    assert limited.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert "Idempotent-Replayed" not in limited.headers


async def test_the_answer_is_stored_before_it_is_sent(database_url: str, db: Database) -> None:
    """A client that retries the moment its answer arrives must get the replay: once, ~1 try
    in 10 got 409 "still in progress", the answer having gone out before it was stored."""
    account = await new_account(db)
    app = create_app(make_settings(database_url, rate_limit="100000/1"))
    body = b'{"email": "first@example.com"}'
    stored_when_sent: list[int | None] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            async with db.read() as conn:
                query = sa.select(idempotency_table.c.response_status)
                stored_when_sent.append((await conn.execute(query)).scalar_one())

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/contacts", "raw_path": b"/v1/contacts",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 4000),
        "headers": [
            (b"host", b"test"), (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", account.headers["Authorization"].encode()),
            (b"idempotency-key", b"sent-after-stored"),
        ],
    }  # fmt: skip
    # The app's startup and shutdown, driven on this loop (the test client runs the app on
    # a loop of its own).
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, to_app.get, from_app.put)  # type: ignore[arg-type]
    )
    await to_app.put({"type": "lifespan.startup"})
    assert (await from_app.get())["type"] == "lifespan.startup.complete"
    try:
        await app(scope, receive, send)  # type: ignore[arg-type]
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await lifespan
    assert stored_when_sent == [201]
