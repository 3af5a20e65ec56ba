"""The per-process caches (API keys, account rates) refresh once per expiry, not once per
request in flight: under load an expired entry used to be read again by every waiting request."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from contacts_api.accounts import service as accounts
from contacts_api.accounts.key_cache import KeyCache
from contacts_api.errors import Unauthorized
from contacts_api.http.ratelimit.guard import AccountRates
from contacts_api.settings import Rate
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
from tests.factories import new_account

IN_FLIGHT = 20


@contextmanager
def statements_on(db: Database, table: str) -> Iterator[list[str]]:
    """The SQL statements run through `db`'s read engine that name `table`."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if table in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_requests_in_flight_share_one_key_lookup(db: Database) -> None:
    now = [1000.0]
    cache = KeyCache(db, ttl_s=2.0, clock=lambda: now[0])
    account = await new_account(db)
    with statements_on(db, "api_key") as reads:
        await cache.principal_for(account.key, utcnow())
        assert len(reads) == 1
        now[0] += 2.5  # expired: the next burst refreshes it
        principals = await asyncio.gather(
            *(cache.principal_for(account.key, utcnow()) for _ in range(IN_FLIGHT))
        )
        assert len(reads) == 2
    assert {p.account_id for p in principals} == {account.account_id}


async def test_a_shared_lookup_of_a_bad_key_fails_every_caller(db: Database) -> None:
    cache = KeyCache(db)
    account = await new_account(db)
    wrong = account.key[:-4] + ("aaaa" if not account.key.endswith("aaaa") else "bbbb")
    with statements_on(db, "api_key") as reads:
        outcomes = await asyncio.gather(
            *(cache.principal_for(wrong, utcnow()) for _ in range(IN_FLIGHT)),
            return_exceptions=True,
        )
        assert len(reads) == 1
        # Unknown keys are never cached: the next request looks again.
        with pytest.raises(Unauthorized, match="Invalid API key"):
            await cache.principal_for(wrong, utcnow())
        assert len(reads) == 2
    assert all(isinstance(o, Unauthorized) and o.message == "Invalid API key" for o in outcomes)
    # Each caller got an exception of its own (they are raised in separate requests).
    assert len({id(o) for o in outcomes}) == IN_FLIGHT


async def test_a_cancelled_caller_does_not_cancel_the_shared_lookup(db: Database) -> None:
    cache = KeyCache(db)
    account = await new_account(db)
    first = asyncio.ensure_future(cache.principal_for(account.key, utcnow()))
    second = asyncio.ensure_future(cache.principal_for(account.key, utcnow()))
    await asyncio.sleep(0)  # both are waiting on the one lookup
    first.cancel()
    assert (await second).account_id == account.account_id
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_requests_in_flight_share_one_account_rate_read(db: Database) -> None:
    account = await new_account(db)
    async with db.transaction() as conn:
        await accounts.set_rate_limit(conn, account.name, Rate(7, 60))
    rates = AccountRates(db, Rate(20, 1))
    with statements_on(db, "rate_limit") as reads:
        found = await asyncio.gather(*(rates.rate_of(account.account_id) for _ in range(IN_FLIGHT)))
        assert len(reads) == 1
    assert set(found) == {Rate(7, 60)}
