"""Rate limits (API.md §3) and failed-key throttling (§1) with in-process counters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.accounts import repository as accounts_repo
from contacts_api.accounts import service as accounts
from contacts_api.app import create_app
from contacts_api.http.ratelimit import Decision
from contacts_api.settings import Rate, Settings
from contacts_api.storage.engine import Database
from tests.conftest import make_settings
from tests.factories import AccountFixture, new_account

Client = AsyncTestClient[Litestar]
TOO_MANY = "Too many requests, please try again later."


async def post(client: Client, account: AccountFixture, n: int = 0) -> Any:
    return await client.post(
        "/v1/contacts", json={"email": f"lead{n}@example.com"}, headers=account.headers
    )


def limited_client(settings: Settings, **overrides: object) -> Client:
    return AsyncTestClient(app=create_app(make_settings(settings.database_url, **overrides)))


async def test_the_default_is_20_per_second() -> None:
    assert Settings(_env_file=None).default_rate == Rate(20, 1)  # type: ignore[call-arg]


async def test_over_the_limit_answers_429_with_the_documented_body_and_headers(
    settings: Settings, db: Database
) -> None:
    account = await new_account(db)
    async with limited_client(settings, rate_limit="3/60") as client:
        answers = [await post(client, account, n) for n in range(4)]

    assert [r.status_code for r in answers] == [201, 201, 201, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert {r.headers["RateLimit-Limit"] for r in answers} == {"3"}
    rejected = answers[-1]
    body = rejected.json()
    assert body == {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": TOO_MANY,
        "retryAfter": body["retryAfter"],
        "limit": {"points": 3, "windowSec": 60},
    }
    assert isinstance(body["retryAfter"], int) and 1 <= body["retryAfter"] <= 60
    assert rejected.headers["Retry-After"] == str(body["retryAfter"])
    reset = rejected.headers["RateLimit-Reset"]
    assert reset.endswith("Z")
    reset_at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    assert 0 < (reset_at - datetime.now(UTC)).total_seconds() <= 60


async def test_errors_after_authentication_carry_ratelimit_headers_and_count(
    settings: Settings, db: Database
) -> None:
    account = await new_account(db)
    async with limited_client(settings, rate_limit="2/60") as client:
        invalid = await client.post("/v1/contacts", json={}, headers=account.headers)
        created = await post(client, account)
        rejected = await post(client, account, 1)

    assert invalid.status_code == 400
    assert invalid.headers["RateLimit-Remaining"] == "1"
    assert created.status_code == 201
    assert rejected.status_code == 429


async def test_another_account_keeps_its_own_budget(settings: Settings, db: Database) -> None:
    busy = await new_account(db, "busy", "owner@busy.test")
    quiet = await new_account(db, "quiet", "owner@quiet.test")
    async with limited_client(settings, rate_limit="2/60") as client:
        busy_answers = [(await post(client, busy, n)).status_code for n in range(3)]
        quiet_answer = await post(client, quiet)

    assert busy_answers == [201, 201, 429]
    assert quiet_answer.status_code == 201
    assert quiet_answer.headers["RateLimit-Remaining"] == "1"


async def test_an_account_override_replaces_the_default(settings: Settings, db: Database) -> None:
    account = await new_account(db)
    async with db.transaction() as conn:
        await accounts.set_rate_limit(conn, account.name, Rate(1, 30))
    async with limited_client(settings, rate_limit="5/60") as client:
        answers = [await post(client, account, n) for n in range(2)]

    assert [r.status_code for r in answers] == [201, 429]
    assert answers[1].json()["limit"] == {"points": 1, "windowSec": 30}

    async with db.transaction() as conn:
        await accounts.set_rate_limit(conn, account.name, None)
    async with limited_client(settings, rate_limit="5/60") as client:
        again = await post(client, account, 3)
    assert again.headers["RateLimit-Limit"] == "5"


async def test_a_running_server_picks_up_an_override_within_seconds(
    settings: Settings, db: Database
) -> None:
    account = await new_account(db)
    async with limited_client(settings, rate_limit="1000/60") as client:
        first = await post(client, account)
        async with db.transaction() as conn:
            await accounts.set_rate_limit(conn, account.name, Rate(500, 60))
        # Overrides are cached for a few seconds per process: poll, as an operator would.
        deadline = time.monotonic() + 30
        latest = first
        while latest.headers["RateLimit-Limit"] == "1000" and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            latest = await post(client, account)

    assert first.headers["RateLimit-Limit"] == "1000"
    assert latest.headers["RateLimit-Limit"] == "500"


async def test_operational_routes_need_no_key_and_are_not_limited(settings: Settings) -> None:
    async with limited_client(settings, rate_limit="1/60") as client:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            answers = [await client.get(path) for _ in range(3)]
            assert [r.status_code for r in answers] == [200, 200, 200], path
            assert "RateLimit-Limit" not in answers[-1].headers


async def test_repeated_invalid_keys_are_throttled_but_a_valid_key_is_not(
    settings: Settings, db: Database
) -> None:
    account = await new_account(db)
    wrong = {"Authorization": "Bearer iclosed_not-a-real-key"}
    async with limited_client(settings, auth_fail_limit="3/60") as client:
        failures = [await client.post("/v1/contacts", json={}, headers=wrong) for _ in range(5)]
        valid = await post(client, account)

    assert [r.status_code for r in failures] == [401, 401, 401, 429, 429]
    assert failures[0].json() == {"message": "Invalid API key"}
    assert failures[-1].json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert failures[-1].json()["limit"] == {"points": 3, "windowSec": 60}
    assert int(failures[-1].headers["Retry-After"]) >= 1
    assert valid.status_code == 201


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "contacts_api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_sets_and_clears_an_account_limit(settings: Settings, db: Database) -> None:
    account = await new_account(db)

    done = run_cli(settings.database_url, "accounts", "set-rate-limit", "acme", "--limit", "7/2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    async with db.read() as conn:
        assert await accounts.rate_limit_override(conn, account.account_id) == Rate(7, 2)

    done = run_cli(settings.database_url, "accounts", "set-rate-limit", "acme", "--default")
    assert done.returncode == 0, done.stderr
    async with db.read() as conn:
        assert await accounts.rate_limit_override(conn, account.account_id) is None


async def test_cli_rejects_a_bad_limit_and_an_unknown_account(settings: Settings) -> None:
    for limit in ("x", "100"):  # a bare count was once taken as per second
        bad = run_cli(settings.database_url, "accounts", "set-rate-limit", "acme", "--limit", limit)
        assert bad.returncode == 2
        said = " ".join(bad.stderr.replace("│", " ").split())  # typer's box, wrapped
        assert f"such as 20/1 (a second) or 20/60 (a minute), got '{limit}'" in said
    neither = run_cli(settings.database_url, "accounts", "set-rate-limit", "acme")
    assert neither.returncode == 2
    assert "give either --limit POINTS/SECONDS or --default" in neither.stderr
    unknown = run_cli(settings.database_url, "accounts", "set-rate-limit", "nope", "--default")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: no account named 'nope'"
    # Once taken: a window ending after the year 9999 (every request of the account a 500),
    # and a budget too large for the database (a traceback).
    for limit in ("1000/253402300799", "99999999999999999999/1"):
        huge = run_cli(
            settings.database_url, "accounts", "set-rate-limit", "acme", "--limit", limit
        )
        assert huge.returncode == 2, huge.stderr
        said = " ".join(huge.stderr.replace("│", " ").split())  # typer's box, wrapped
        assert "points must be at most 2147483647 and seconds at most 31622400" in said


async def test_a_limit_stored_before_the_bounds_is_read_within_them(
    client: Client, settings: Settings, db: Database
) -> None:
    """A window of 10^11 s, stored before `set-rate-limit` refused it, ends after the year
    9999: every request of the account was a 500 (SQLite; PostgreSQL's column holds 2^31-1
    at most, 68 years)."""
    account = await new_account(db)
    window = 10**11 if db.is_sqlite else 2**31 - 1
    async with db.transaction() as conn:
        await accounts_repo.update_rate_limit(conn, account.account_id, 2**31 - 1, window)
    async with db.read() as conn:
        assert await accounts.rate_limit_override(conn, account.account_id) == Rate(
            2**31 - 1, 366 * 24 * 3600
        )
    response = await client.get("/v1/users", headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.headers["ratelimit-limit"] == str(2**31 - 1)
    assert response.headers["ratelimit-reset"] < "2100"  # a date, not a 500


def test_ratelimit_reset_never_names_an_instant_before_the_window_ends() -> None:
    """Rounded down to the millisecond, a client waiting until the instant named met a 429
    (and a Retry-After of a whole second) for the last fraction of a millisecond."""
    for reset_at in (1_700_000_001.0007, 1_700_000_001.0001, 1_700_000_001.999_9):
        decision = Decision.of(21, Rate(20, 1), reset_at=reset_at, now=reset_at - 0.5)
        named = dict(decision.headers())[b"ratelimit-reset"].decode()
        instant = datetime.fromisoformat(named.replace("Z", "+00:00")).timestamp()
        assert reset_at <= instant < reset_at + 0.001, named
