"""API.md §1: the three 401 messages, and what a key can reach."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.accounts import service as accounts
from contacts_api.accounts.key_cache import KeyCache
from contacts_api.app import create_app
from contacts_api.errors import Unauthorized
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
from tests.conftest import make_settings
from tests.factories import new_account

Client = AsyncTestClient[Litestar]
BODY = {"email": "a@example.com"}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic aWNsb3NlZF94Onk=",
        "iclosed_abcdef",  # no Bearer
        "Bearer abcdef",  # no iclosed prefix
        "Bearer iclosed_",  # prefix alone
        "Bearer ICLOSED_abcdef",
    ],
)
async def test_missing_or_malformed_key_is_api_key_required(
    client: Client, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.post("/v1/contacts", json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "API key is required"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_key_is_invalid(client: Client, db: Database) -> None:
    await new_account(db)
    for key in ("iclosed_doesnotexist", "iclosed-doesnotexist"):
        response = await client.post(
            "/v1/contacts", json=BODY, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 401
        assert response.json() == {"message": "Invalid API key"}
        assert response.headers["www-authenticate"] == "Bearer"


async def test_hyphen_spelling_of_a_valid_key_is_another_key(client: Client, db: Database) -> None:
    account = await new_account(db)
    hyphen = "iclosed-" + account.key.removeprefix("iclosed_")
    response = await client.post(
        "/v1/contacts", json=BODY, headers={"Authorization": f"Bearer {hyphen}"}
    )
    assert response.json() == {"message": "Invalid API key"}


async def test_valid_key_with_lowercase_scheme_works(client: Client, db: Database) -> None:
    account = await new_account(db)
    response = await client.post(
        "/v1/contacts", json=BODY, headers={"Authorization": f"bearer {account.key}"}
    )
    assert response.status_code == 201


async def revoke_all(db: Database, account_name: str) -> None:
    async with db.transaction() as conn:
        for row in await accounts.list_keys(conn, account_name):
            await accounts.revoke_key(conn, row.id, utcnow())


async def test_revoked_key_is_invalid(database_url: str, db: Database) -> None:
    app = create_app(make_settings(database_url, key_cache_seconds=0))
    async with AsyncTestClient(app=app) as client:
        account = await new_account(db)
        first = await client.post("/v1/contacts", json=BODY, headers=account.headers)
        assert first.status_code == 201
        await revoke_all(db, account.name)
        response = await client.post("/v1/contacts", json=BODY, headers=account.headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API key"}


async def test_cached_key_is_checked_again_after_the_ttl(db: Database) -> None:
    now = [1000.0]
    cache = KeyCache(db, ttl_s=2.0, clock=lambda: now[0])
    account = await new_account(db)
    assert (await cache.principal_for(account.key, utcnow())).account_id == account.account_id
    await revoke_all(db, account.name)
    now[0] += 1.5  # within the TTL the verified key is trusted
    assert (await cache.principal_for(account.key, utcnow())).user_id == account.user_id
    now[0] += 1.0  # past it, the revocation is seen
    with pytest.raises(Unauthorized, match="Invalid API key"):
        await cache.principal_for(account.key, utcnow())


async def test_cached_key_still_expires_on_time(db: Database) -> None:
    cache = KeyCache(db, ttl_s=60)
    account = await new_account(db, expires_at=utcnow() + timedelta(seconds=30))
    await cache.principal_for(account.key, utcnow())
    with pytest.raises(Unauthorized, match="API key expired"):
        await cache.principal_for(account.key, utcnow() + timedelta(seconds=31))


async def test_expired_key(client: Client, db: Database) -> None:
    account = await new_account(db, expires_at=utcnow() - timedelta(seconds=1))
    response = await client.post("/v1/contacts", json=BODY, headers=account.headers)
    assert response.status_code == 401
    assert response.json() == {"message": "API key expired"}


async def test_key_expiring_later_still_works(client: Client, db: Database) -> None:
    account = await new_account(db, expires_at=utcnow() + timedelta(hours=1))
    response = await client.post("/v1/contacts", json=BODY, headers=account.headers)
    assert response.status_code == 201


async def test_keys_are_stored_only_as_hashes(db: Database) -> None:
    import sqlalchemy as sa

    from contacts_api.storage.models import api_key_table

    account = await new_account(db)
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(api_key_table))).mappings().all()
    stored = " ".join(str(v) for row in rows for v in row.values())
    assert account.key not in stored
    assert account.key.removeprefix("iclosed_") not in stored


async def test_key_shape(db: Database) -> None:
    account = await new_account(db)
    assert account.key.startswith("iclosed_")
    token = account.key.removeprefix("iclosed_")
    assert len(token) >= 32
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
