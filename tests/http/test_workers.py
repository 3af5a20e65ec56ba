"""Real `contacts-api serve --workers 2` processes sharing one rate-limit budget: through Redis,
or without it through the file `serve` shares between its workers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contacts_api.storage.engine import Database
from tests.factories import new_account
from tests.redis_service import drop_prefix, shared_redis
from tests.servers import serve

LIMIT = 10


@pytest.fixture(params=["redis", "shared-file"])
def limiter_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings that pick the store; for the file, TMPDIR too, to see it cleaned up."""
    if request.param == "shared-file":
        yield {"TMPDIR": str(tmp_path)}
        return
    url, prefix = shared_redis()
    yield {"CONTACTS_API_REDIS_URL": url, "CONTACTS_API_REDIS_PREFIX": prefix}
    drop_prefix(url, prefix)


async def test_a_burst_over_the_limit_gets_exactly_the_excess_rejected_across_two_workers(
    database_url: str, db: Database, limiter_env: dict[str, str], tmp_path: Path
) -> None:
    busy = await new_account(db, "busy", "owner@busy.test")
    quiet = await new_account(db, "quiet", "owner@quiet.test")
    env = {
        "CONTACTS_API_DATABASE_URL": database_url,
        "CONTACTS_API_RATE_LIMIT": f"{LIMIT}/60",
        **limiter_env,
    }
    log = tmp_path / "server.log"
    with serve(env, workers=2, log=log) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            burst = await asyncio.gather(
                *(
                    client.post(
                        "/v1/contacts", json={"email": f"b{n}@example.com"}, headers=busy.headers
                    )
                    for n in range(LIMIT + 10)
                )
            )
            others = [
                await client.post(
                    "/v1/contacts", json={"email": f"q{n}@example.com"}, headers=quiet.headers
                )
                for n in range(3)
            ]
            metrics = (await client.get("/metrics")).text

    codes = sorted(r.status_code for r in burst)
    assert codes == [201] * LIMIT + [429] * 10
    assert [r.status_code for r in others] == [201, 201, 201]

    rejected = next(r for r in burst if r.status_code == 429)
    body = rejected.json()
    assert body == {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "Too many requests, please try again later.",
        "retryAfter": body["retryAfter"],
        "limit": {"points": LIMIT, "windowSec": 60},
    }
    assert 1 <= body["retryAfter"] <= 60
    assert rejected.headers["Retry-After"] == str(body["retryAfter"])
    assert rejected.headers["RateLimit-Limit"] == str(LIMIT)
    assert rejected.headers["RateLimit-Remaining"] == "0"
    iso_millis = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(iso_millis, rejected.headers["RateLimit-Reset"])

    # /metrics adds up both workers, whichever of them answers the scrape.
    assert "contacts_api_contacts_created_total 13.0" in metrics
    assert 'contacts_api_rate_limited_total{reason="account"} 10.0' in metrics

    # Every access-log line is JSON and carries the id its response was sent with.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    logged = access[rejected.headers["X-Request-Id"]]
    assert logged["status"] == 429
    assert logged["route"] == "/v1/contacts"
    # The shared file goes with the server that made it.
    assert not list(tmp_path.glob("contacts-api-limits-*"))


def test_a_workers_startup_objects_are_kept_out_of_the_collectors_full_passes(
    tmp_path: Path,
) -> None:
    """Each worker's factory freezes what startup made (app.py): full collections that
    walked it stalled every request in flight on that worker for up to ~100 ms."""
    probe = (
        "import gc\n"
        "from contacts_api.app import create_app_from_env\n"
        "before = gc.get_freeze_count()\n"
        "app = create_app_from_env()\n"
        "walked = any(o is app for o in gc.get_objects())\n"
        "print(before, gc.get_freeze_count(), int(walked))\n"
    )
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": f"sqlite:///{tmp_path}/probe.db"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    before, frozen, walked = map(int, out.stdout.split())
    assert before == 0
    assert frozen > 50_000  # the imported modules, the app, its routes
    assert walked == 0  # the app itself is among the frozen, out of the collector's sight
