"""SQL for Idempotency-Key records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.storage.models import idempotency_table

t = idempotency_table.c


def _dead(expired_before: datetime, stale_before: datetime) -> sa.ColumnElement[bool]:
    """Expired records, and claims whose first request died without an answer."""
    return sa.or_(
        t.expires_at <= expired_before,
        sa.and_(t.response_status.is_(None), t.created_at <= stale_before),
    )


async def delete_dead_key(
    conn: AsyncConnection,
    account_id: int,
    key: str,
    *,
    expired_before: datetime,
    stale_before: datetime,
) -> None:
    """Free this one key when its record is dead, so it can be claimed again."""
    await conn.execute(
        sa.delete(idempotency_table).where(
            t.account_id == account_id, t.key == key, _dead(expired_before, stale_before)
        )
    )


async def purge_dead(
    conn: AsyncConnection, *, expired_before: datetime, stale_before: datetime, limit: int
) -> int:
    """Delete up to `limit` dead records of any account; rows others hold are skipped.

    SKIP LOCKED (PostgreSQL) means housekeeping never waits on, or deadlocks with, a claim.
    """
    victims = sa.select(t.id).where(_dead(expired_before, stale_before)).limit(limit)
    if conn.dialect.name == "postgresql":
        victims = victims.with_for_update(skip_locked=True)
    result = await conn.execute(sa.delete(idempotency_table).where(t.id.in_(victims)))
    return int(result.rowcount)


async def try_claim(
    conn: AsyncConnection,
    *,
    account_id: int,
    key: str,
    fingerprint: str,
    now: datetime,
    expires_at: datetime,
) -> int | None:
    """Insert the claim; None when the account already holds this key (no exception)."""
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    statement = (
        insert(idempotency_table)
        .values(
            account_id=account_id,
            key=key,
            fingerprint=fingerprint,
            created_at=now,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing(index_elements=["account_id", "key"])
        .returning(t.id)
    )
    value = (await conn.execute(statement)).scalar_one_or_none()
    return None if value is None else int(value)


async def find(conn: AsyncConnection, account_id: int, key: str) -> sa.Row[Any] | None:
    query = sa.select(idempotency_table).where(t.account_id == account_id, t.key == key)
    return (await conn.execute(query)).first()


async def store_response(
    conn: AsyncConnection, record_id: int, status: int, headers: list[list[str]], body: bytes
) -> None:
    await conn.execute(
        sa.update(idempotency_table)
        .where(t.id == record_id)
        .values(response_status=status, response_headers=headers, response_body=body)
    )


async def delete(conn: AsyncConnection, record_id: int) -> None:
    await conn.execute(sa.delete(idempotency_table).where(t.id == record_id))
