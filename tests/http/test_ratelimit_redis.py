"""Redis-backed limits: one budget across processes, and failing open while Redis is away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.settings import Settings
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
