"""SQL for accounts, users and API keys."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.storage.models import account_table, api_key_table, user_table


async def insert_account(conn: AsyncConnection, name: str, now: datetime) -> int:
    result = await conn.execute(
        sa.insert(account_table).values(name=name, created_at=now).returning(account_table.c.id)
    )
    return int(result.scalar_one())


async def find_account_id(conn: AsyncConnection, name: str) -> int | None:
    result = await conn.execute(sa.select(account_table.c.id).where(account_table.c.name == name))
    value = result.scalar_one_or_none()
    return None if value is None else int(value)


async def any_account(conn: AsyncConnection) -> bool:
    result = await conn.execute(sa.select(account_table.c.id).limit(1))
    return result.first() is not None


async def insert_user(conn: AsyncConnection, account_id: int, email: str, now: datetime) -> int:
    result = await conn.execute(
        sa.insert(user_table)
        .values(account_id=account_id, email=email, created_at=now)
        .returning(user_table.c.id)
    )
    return int(result.scalar_one())


async def find_user_id(conn: AsyncConnection, account_id: int, email: str | None) -> int | None:
    """The user with that email, or the account's first user when no email is given."""
    query = sa.select(user_table.c.id).where(user_table.c.account_id == account_id)
    if email is not None:
        query = query.where(sa.func.lower(user_table.c.email) == email.lower())
    result = await conn.execute(query.order_by(user_table.c.id).limit(1))
    value = result.scalar_one_or_none()
    return None if value is None else int(value)


async def insert_key(
    conn: AsyncConnection,
    *,
    account_id: int,
    user_id: int,
    key_hash: str,
    display_prefix: str,
    expires_at: datetime | None,
    now: datetime,
) -> int:
    result = await conn.execute(
        sa.insert(api_key_table)
        .values(
            account_id=account_id,
            user_id=user_id,
            key_hash=key_hash,
            display_prefix=display_prefix,
            expires_at=expires_at,
            created_at=now,
        )
        .returning(api_key_table.c.id)
    )
    return int(result.scalar_one())


async def find_key_by_hash(
    conn: AsyncConnection, key_hash: str
) -> sa.Row[tuple[object, ...]] | None:
    result = await conn.execute(
        sa.select(api_key_table).where(api_key_table.c.key_hash == key_hash)
    )
    return result.first()


async def list_keys(conn: AsyncConnection, account_id: int) -> list[sa.Row[tuple[object, ...]]]:
    query = (
        sa.select(api_key_table, user_table.c.email.label("user_email"))
        .join(user_table, user_table.c.id == api_key_table.c.user_id)
        .where(api_key_table.c.account_id == account_id)
        .order_by(api_key_table.c.id)
    )
    return list((await conn.execute(query)).all())


async def revoke_key(conn: AsyncConnection, key_id: int, now: datetime) -> bool:
    result = await conn.execute(
        sa.update(api_key_table)
        .where(api_key_table.c.id == key_id, api_key_table.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


async def find_rate_limit(conn: AsyncConnection, account_id: int) -> tuple[int, int] | None:
    """(points, window seconds) of the account's own rate limit, or None."""
    result = await conn.execute(
        sa.select(account_table.c.rate_limit_points, account_table.c.rate_limit_window).where(
            account_table.c.id == account_id
        )
    )
    row = result.first()
    if row is None or row.rate_limit_points is None or row.rate_limit_window is None:
        return None
    return int(row.rate_limit_points), int(row.rate_limit_window)


async def update_rate_limit(
    conn: AsyncConnection, account_id: int, points: int | None, window: int | None
) -> None:
    await conn.execute(
        sa.update(account_table)
        .where(account_table.c.id == account_id)
        .values(rate_limit_points=points, rate_limit_window=window)
    )


async def list_users(conn: AsyncConnection, account_id: int) -> list[sa.Row[tuple[object, ...]]]:
    query = sa.select(user_table).where(user_table.c.account_id == account_id)
    return list((await conn.execute(query.order_by(user_table.c.id))).all())
