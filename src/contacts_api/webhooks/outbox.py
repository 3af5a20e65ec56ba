"""The outbox writer: contact changes become webhook messages in the same transaction.

Usage, at every place that changes a contact (inside its `async with db.transaction()`):

    await record_contact_event(
        conn,
        account_id=principal.account_id,
        kind=CONTACT_DETAIL_CHANGED,       # or NEW_CONTACT_CREATED, CONTACT_DELETED
        contact_row=row,                   # the contact row as it is after the change
        updated_attributes=("email",),     # wire names of the changed fields
        now=now,
    )

A rolled-back change therefore emits nothing and a committed one is never lost. Accounts
without a matching enabled webhook get no rows (one indexed lookup is the whole cost).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.contacts import bulk_repository as bulk_repo
from contacts_api.contacts.bulk import ContactChange
from contacts_api.contacts.manage_schemas import EventSummary
from contacts_api.contacts.manage_service import extended_read
from contacts_api.contacts.repository import ContactRow
from contacts_api.events.repository import get_event
from contacts_api.webhooks import repository as repo
from contacts_api.webhooks.schemas import (
    CONTACT_DETAIL_CHANGED,
    EVENT_NAMES,
    HOOK_TYPES,
    NEW_CONTACT_CREATED,
)


def new_webhook_id() -> str:
    """A `webhook-id`: `msg_` + 24 URL-safe random characters."""
    return "msg_" + secrets.token_urlsafe(18)


EventCache = dict[int, EventSummary | None]


async def _event_summary(
    conn: AsyncConnection, event_id: int | None, cache: EventCache
) -> EventSummary | None:
    """The contact's event as detail shows it (looked up once per batch)."""
    if event_id is None:
        return None
    if event_id not in cache:
        event = await get_event(conn, event_id)
        cache[event_id] = (
            None
            if event is None
            else EventSummary(event.id, event.name, event.link_prefix, event.event_type)
        )
    return cache[event_id]


async def contact_payload(
    conn: AsyncConnection,
    kind: str,
    contact_row: ContactRow,
    updated_attributes: Sequence[str],
    events: EventCache | None = None,
) -> str:
    """The body: a JSON array with one object (the contact + hookType, updatedAttributes...)."""
    item: dict[str, Any] = msgspec.to_builtins(extended_read(contact_row))
    item["hookType"] = HOOK_TYPES[kind]
    item["updatedAttributes"] = list(updated_attributes)
    event = await _event_summary(conn, contact_row.event_id, {} if events is None else events)
    if event is not None:
        item["event"] = msgspec.to_builtins(event)
    return msgspec.json.encode([item]).decode()


async def record_contact_event(
    conn: AsyncConnection,
    *,
    account_id: int,
    kind: str,
    contact_row: ContactRow,
    updated_attributes: Sequence[str],
    now: datetime,
    endpoints: Sequence[repo.Row] | None = None,
    events: EventCache | None = None,
) -> int:
    """Queue `kind` about this contact for each subscribed webhook; returns how many.

    `endpoints` (the account's active endpoints) and `events` (a cache of event summaries)
    let a batch look each up once instead of once per change.
    """
    if kind not in EVENT_NAMES:
        raise ValueError(f"unknown webhook event {kind!r}")
    if endpoints is None:
        endpoints = await repo.active_endpoints(conn, account_id)
    subscribed = [e.id for e in endpoints if kind in e.events]
    if not subscribed:
        return 0
    body = await contact_payload(conn, kind, contact_row, updated_attributes, events)
    await repo.insert_messages(
        conn,
        [
            {
                "account_id": account_id,
                "endpoint_id": endpoint_id,
                "webhook_id": new_webhook_id(),
                "event_type": kind,
                "payload": body,
                "status": repo.PENDING,
                "attempt_count": 0,
                "created_at": now,
                "next_attempt_at": now,
                "first_attempt_at": None,
                "completed_at": None,
            }
            for endpoint_id in subscribed
        ],
    )
    return len(subscribed)


async def record_contact_changes(
    conn: AsyncConnection, account_id: int, changes: Sequence[ContactChange], now: datetime
) -> int:
    """The outbox rows for a batch of changes (group-committed creates, bulk, import).

    One subscription lookup for the whole batch (an account without webhooks pays one query),
    and one lookup per distinct event.
    """
    if not changes:
        return 0
    endpoints = await repo.active_endpoints(conn, account_id)
    if not endpoints:
        return 0
    rows = {
        row.id: row
        for row in await bulk_repo.contacts_by_ids(conn, {c.contact_id for c in changes})
    }
    events: EventCache = {}
    queued = 0
    for change in changes:
        kind = NEW_CONTACT_CREATED if change.created else CONTACT_DETAIL_CHANGED
        queued += await record_contact_event(
            conn,
            account_id=account_id,
            kind=kind,
            contact_row=rows[change.contact_id],
            updated_attributes=() if change.created else change.changed,
            now=now,
            endpoints=endpoints,
            events=events,
        )
    return queued
