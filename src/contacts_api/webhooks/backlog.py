"""How far behind the webhook outbox is: for /metrics, across every dispatcher.

Each endpoint sends one message at a time, and a message waiting for its retry holds back
the younger ones (README, "Ordering rule"): a receiver that fails now and then, or answers
slowly, lets its queue grow by minutes, which nothing showed (a soak review: ~35 messages/s
in, the first attempts 3-5 minutes late, /metrics silent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.storage.models import webhook_endpoint_table as endpoints
from contacts_api.storage.models import webhook_message_table as messages
from contacts_api.webhooks.repository import PENDING


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int  # messages of enabled endpoints not yet delivered nor given up
    oldest_seconds: float  # how long ago the oldest of them was written; 0 when none


async def read_backlog(conn: AsyncConnection, now: datetime) -> Backlog:
    query = (
        sa.select(sa.func.count(), sa.func.min(messages.c.created_at))
        .select_from(messages.join(endpoints, endpoints.c.id == messages.c.endpoint_id))
        .where(messages.c.status == PENDING, endpoints.c.disabled_at.is_(None))
    )
    pending, oldest = (await conn.execute(query)).one()
    if oldest is None:
        return Backlog(int(pending), 0.0)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return Backlog(int(pending), max(0.0, (now - oldest).total_seconds()))
