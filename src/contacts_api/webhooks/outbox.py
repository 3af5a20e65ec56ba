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

from contacts_api.contacts.bulk import ContactChange, contacts_by_ids
from contacts_api.contacts.repository import ContactRow
from contacts_api.contacts.service import CreateOutcome, contact_read
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


async def contact_payload(
    conn: AsyncConnection, kind: str, contact_row: ContactRow, updated_attributes: Sequence[str]
) -> str:
    """The body: a JSON array with one object (the contact + hookType, updatedAttributes...)."""
    item: dict[str, Any] = msgspec.to_builtins(contact_read(contact_row))
    item["secondary_email"] = contact_row.secondary_email
    item["secondary_phoneNumber"] = contact_row.secondary_phone_number
    item["hookType"] = HOOK_TYPES[kind]
    item["updatedAttributes"] = list(updated_attributes)
    if contact_row.event_id is not None:
        event = await get_event(conn, contact_row.event_id)
        if event is not None:
            item["event"] = {
                "id": event.id,
                "name": event.name,
                "linkPrefix": event.link_prefix,
                "eventType": event.event_type,
            }
    return msgspec.json.encode([item]).decode()


async def record_contact_event(
    conn: AsyncConnection,
    *,
    account_id: int,
    kind: str,
    contact_row: ContactRow,
    updated_attributes: Sequence[str],
    now: datetime,
) -> int:
    """Queue `kind` about this contact for each subscribed webhook; returns how many."""
    if kind not in EVENT_NAMES:
        raise ValueError(f"unknown webhook event {kind!r}")
    subscribed = [e.id for e in await repo.active_endpoints(conn, account_id) if kind in e.events]
    if not subscribed:
        return 0
    body = await contact_payload(conn, kind, contact_row, updated_attributes)
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


async def record_create_outcome(
    conn: AsyncConnection, *, account_id: int, outcome: CreateOutcome, now: datetime
) -> int:
    """newContactCreated for a new contact, contactDetailChanged for an upsert that changed."""
    changed: tuple[str, ...]
    if outcome.created:
        kind, changed = NEW_CONTACT_CREATED, ()
    elif outcome.changed:
        kind, changed = CONTACT_DETAIL_CHANGED, outcome.changed
    else:
        return 0
    return await record_contact_event(
        conn,
        account_id=account_id,
        kind=kind,
        contact_row=outcome.contact,
        updated_attributes=changed,
        now=now,
    )


async def record_contact_changes(
    conn: AsyncConnection, account_id: int, changes: Sequence[ContactChange], now: datetime
) -> int:
    """The outbox rows for a batch of changes (group-committed creates, bulk, import).

    One subscription lookup for the whole batch: an account without webhooks pays one query.
    """
    if not changes or not await repo.active_endpoints(conn, account_id):
        return 0
    rows = await contacts_by_ids(conn, [c.contact_id for c in changes])
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
        )
    return queued
