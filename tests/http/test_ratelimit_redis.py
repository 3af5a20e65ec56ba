"""Redis-backed limits: one budget across processes, and failing open while Redis is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog.testing
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.http.ratelimit.redis import RedisLimiter
from contacts_api.settings import Rate, Settings
from contacts_api.storage.engine import Database
from tests.conftest import make_settings
from tests.factories import AccountFixture, new_account
from tests.redis_service import drop_prefix, private_redis, shared_redis

Client = AsyncTestClient[Litestar]


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    url, prefix = shared_redis()
    yield url, prefix
    drop_prefix(url, prefix)


async def post(client: Client, account: AccountFixture, n: int) -> object:
    return await client.post(
        "/v1/contacts", json={"email": f"lead{n}@example.com"}, headers=account.headers
    )


async def test_two_apps_on_one_redis_share_one_budget(
    settings: Settings, db: Database, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    account = await new_account(db)

    def app() -> Litestar:
        return create_app(
            make_settings(
                settings.database_url, redis_url=url, redis_prefix=prefix, rate_limit="3/60"
            )
        )

    async with AsyncTestClient(app=app()) as first, AsyncTestClient(app=app()) as second:
        answers = [
            await post(first, account, 0),
            await post(second, account, 1),
            await post(first, account, 2),
            await post(second, account, 3),
        ]

    assert [r.status_code for r in answers] == [201, 201, 201, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert answers[-1].json()["limit"] == {"points": 3, "windowSec": 60}


async def test_failed_keys_are_counted_across_apps(
    settings: Settings, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    wrong = {"Authorization": "Bearer iclosed_unknown"}

    def app() -> Litestar:
        return create_app(
            make_settings(
                settings.database_url, redis_url=url, redis_prefix=prefix, auth_fail_limit="2/60"
            )
        )

    async with AsyncTestClient(app=app()) as first, AsyncTestClient(app=app()) as second:
        codes = [
            (await first.post("/v1/contacts", json={}, headers=wrong)).status_code,
            (await second.post("/v1/contacts", json={}, headers=wrong)).status_code,
            (await first.post("/v1/contacts", json={}, headers=wrong)).status_code,
        ]

    assert codes == [401, 401, 429]


async def test_requests_are_served_while_redis_is_away_and_limits_resume_after(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    account = await new_account(db)
    with private_redis(tmp_path) as redis_server:
        app = create_app(
            make_settings(settings.database_url, redis_url=redis_server.url, rate_limit="2/60")
        )
        async with AsyncTestClient(app=app) as client:
            before = [(await post(client, account, n)).status_code for n in range(3)]

            redis_server.stop()
            with structlog.testing.capture_logs() as logs:
                during = [await post(client, account, n) for n in range(3, 8)]

            redis_server.start()
            # The limiter leaves a failed Redis alone for a second before trying it again.
            deadline = time.monotonic() + 30
            n = 100
            while True:
                n += 1
                answer = await post(client, account, n)
                if "RateLimit-Limit" in answer.headers or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            after = [answer.status_code] + [
                (await post(client, account, m)).status_code for m in (200, 201)
            ]

    assert before == [201, 201, 429]
    assert [r.status_code for r in during] == [201] * 5
    assert all("RateLimit-Limit" not in r.headers for r in during)
    outage_lines = [line for line in logs if line["event"].startswith("redis unreachable")]
    assert len(outage_lines) == 1  # once per outage, not once per request
    assert after == [201, 201, 429]


async def test_a_burst_on_one_key_counts_each_hit_in_order(
    redis_prefix: tuple[str, str],
) -> None:
    """Hits that share a pipeline share one INCRBY per key; each still gets its own count."""
    url, prefix = redis_prefix
    limiter = RedisLimiter(url, prefix)
    rate = Rate(5, 60)
    try:
        await limiter.hit("warm", rate)  # the connection is open: the burst is one pipeline
        burst = [limiter.hit("busy", rate) for _ in range(8)]
        burst.insert(3, limiter.hit("quiet", rate))
        decisions = await asyncio.gather(*burst)
        later = await limiter.hit("busy", rate)
    finally:
        await limiter.close()

    assert all(d is not None for d in decisions) and later is not None
    busy = [d for d in decisions[:3] + decisions[4:] if d is not None]
    quiet = decisions[3]
    assert [d.remaining for d in busy] == [4, 3, 2, 1, 0, 0, 0, 0]
    assert [d.allowed for d in busy] == [True] * 5 + [False] * 3
    assert quiet is not None and (quiet.allowed, quiet.remaining) == (True, 4)
    assert (later.allowed, later.remaining) == (False, 0)
    client = redis.Redis.from_url(url)
    try:
        assert int(client.get(prefix + "busy") or 0) == 9  # every hit counted, the late one too
        assert 0 < client.pttl(prefix + "busy") <= 60_000
    finally:
        client.close()
