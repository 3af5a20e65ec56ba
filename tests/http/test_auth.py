"""API.md §1: the three 401 messages, and what a key can reach."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.accounts import service as accounts
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
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


async def test_unknown_key_is_invalid(client: Client, db: Database) -> None:
    await new_account(db)
    for key in ("iclosed_doesnotexist", "iclosed-doesnotexist"):
        response = await client.post(
            "/v1/contacts", json=BODY, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 401
        assert response.json() == {"message": "Invalid API key"}


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


async def test_revoked_key_is_invalid(client: Client, db: Database) -> None:
    account = await new_account(db)
    assert (
        await client.post("/v1/contacts", json=BODY, headers=account.headers)
    ).status_code == 201
    async with db.transaction() as conn:
        (row,) = await accounts.list_keys(conn, account.name)
        await accounts.revoke_key(conn, row.id, utcnow())
    response = await client.post("/v1/contacts", json=BODY, headers=account.headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API key"}


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
