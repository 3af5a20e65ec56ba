"""Accounts, users and API keys: creation, authentication and revocation."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts import keys
from contacts_api.accounts import repository as repo
from contacts_api.accounts.schemas import Principal, UserRead
from contacts_api.errors import Unauthorized, UserError
from contacts_api.settings import MAX_RATE_POINTS, MAX_RATE_WINDOW, Rate

MISSING_KEY = "API key is required"
INVALID_KEY = "Invalid API key"
EXPIRED_KEY = "API key expired"


@dataclass(frozen=True, slots=True)
class NewAccount:
    account_id: int
    user_id: int


async def create_account(
    conn: AsyncConnection, name: str, owner_email: str, now: datetime
) -> NewAccount:
    """A new account with its first user."""
    if await repo.find_account_id(conn, name) is not None:
        raise UserError(f"account {name!r} already exists")
    account_id = await repo.insert_account(conn, name, now)
    user_id = await repo.insert_user(conn, account_id, owner_email, now)
    return NewAccount(account_id, user_id)


async def account_id_by_name(conn: AsyncConnection, name: str) -> int:
    account_id = await repo.find_account_id(conn, name)
    if account_id is None:
        raise UserError(f"no account named {name!r}")
    return account_id


async def create_key(
    conn: AsyncConnection,
    account_name: str,
    now: datetime,
    *,
    user_email: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Issue a key for a user of the account; returns the plaintext, which is never stored."""
    account_id = await account_id_by_name(conn, account_name)
    user_id = await repo.find_user_id(conn, account_id, user_email)
    if user_id is None:
        raise UserError(f"no user {user_email!r} in account {account_name!r}")
    key = keys.new_key()
    await repo.insert_key(
        conn,
        account_id=account_id,
        user_id=user_id,
        key_hash=keys.hash_key(key),
        display_prefix=keys.display_prefix(key),
        expires_at=expires_at,
        now=now,
    )
    return key


async def list_keys(conn: AsyncConnection, account_name: str) -> list[sa.Row[tuple[object, ...]]]:
    return await repo.list_keys(conn, await account_id_by_name(conn, account_name))


async def revoke_key(conn: AsyncConnection, key_id: int, now: datetime) -> None:
    if not await repo.revoke_key(conn, key_id, now):
        raise UserError(f"no active key with id {key_id}")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A live (not revoked) key: who it speaks for and until when."""

    principal: Principal
    expires_at: datetime | None

    def check(self, now: datetime) -> Principal:
        if self.expires_at is not None and self.expires_at <= now:
            raise Unauthorized(EXPIRED_KEY)
        return self.principal


async def key_record(conn: AsyncConnection, digest: str) -> KeyRecord:
    """The live key with this hash, or Unauthorized("Invalid API key")."""
    row = await repo.find_key_by_hash(conn, digest)
    # The lookup is by hash, so timing says nothing about the key; compare anyway, in
    # constant time, so a future change of lookup cannot turn into an oracle.
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at:
        raise Unauthorized(INVALID_KEY)
    principal = Principal(account_id=row.account_id, user_id=row.user_id, key_id=row.id)
    return KeyRecord(principal, row.expires_at)


def key_digest(key: str) -> str:
    """The at-rest hash of a well-formed key, or Unauthorized("API key is required")."""
    if not keys.is_well_formed(key):
        raise Unauthorized(MISSING_KEY)
    return keys.hash_key(key)


async def set_rate_limit(conn: AsyncConnection, account_name: str, rate: Rate | None) -> None:
    """Give the account its own rate limit, or None to follow the server default again."""
    account_id = await account_id_by_name(conn, account_name)
    await repo.update_rate_limit(
        conn, account_id, rate.points if rate else None, rate.window if rate else None
    )


async def rate_limit_override(conn: AsyncConnection, account_id: int) -> Rate | None:
    """The account's own rate limit, or None when it follows the server default."""
    found = await repo.find_rate_limit(conn, account_id)
    if not found:
        return None
    # Within the bounds Rate.parse now sets: a window stored before them (10^11 s, say)
    # made every request of the account a 500.
    points, window = found
    return Rate(min(points, MAX_RATE_POINTS), min(window, MAX_RATE_WINDOW))


async def list_users(conn: AsyncConnection, principal: Principal) -> list[UserRead]:
    """The users of the caller's account."""
    rows = await repo.list_users(conn, principal.account_id)
    return [UserRead(r.id, r.email, r.first_name, r.last_name) for r in rows]  # type: ignore[attr-defined]
