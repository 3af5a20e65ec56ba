"""The rules of contacts: create with upsert by email, tags, events and attribution.

Callers (routes, CLI, importer) own the transaction; these functions only read and write
inside the connection they are given, so many creates can later share one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import repository as repo
from contacts_api.contacts.rules import (  # re-exported: the create's pure rules
    PLAIN_FIELDS as PLAIN_FIELDS,
)
from contacts_api.contacts.rules import SECONDARY_FIELDS as SECONDARY_FIELDS
from contacts_api.contacts.rules import given_columns as given_columns
from contacts_api.contacts.rules import new_contact_values as new_contact_values
from contacts_api.contacts.rules import parse_contact_create as parse_contact_create
from contacts_api.contacts.schemas import ContactCreate, ContactRead
from contacts_api.contacts.tracking import merge_tracking, utm_pairs
from contacts_api.errors import Conflict, ValidationFailed
from contacts_api.events.repository import find_event_id
from contacts_api.settings import DuplicateEmailMode
from contacts_api.storage.retry import RaceLost
from contacts_api.timeutil import after, format_time

# Column -> the wire name reported in a webhook's updatedAttributes (the secondary email and
# phone: set by PUT, and by an import's row).
WIRE_NAME = {column: wire for wire, column in (PLAIN_FIELDS | SECONDARY_FIELDS).items()} | {
    "tag_id": "tagId",
    "event_id": "eventId",
    "joined_time": "joinedTime",
    "tracking": "tracking",
}
EMAIL_TAKEN = "A contact with this email already exists"


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    """What a create did: `created` is False when an existing contact was updated."""

    contact: repo.ContactRow | repo.ContactSnapshot
    created: bool
    changed: tuple[str, ...]


def contact_read(row: repo.ContactRow | repo.ContactSnapshot) -> ContactRead:
    return ContactRead(
        id=row.id,
        accountId=row.account_id,
        userId=row.user_id,
        email=row.email,
        firstName=row.first_name,
        lastName=row.last_name,
        status=row.status,
        phoneNumber=row.phone_number,
        previewId=row.preview_id,
        tagId=row.tag_id,
        blockedByRecaptcha=bool(row.blocked_by_recaptcha),
        joinedTime=format_time(row.joined_time) or "",
        country=row.country,
        timeZone=row.time_zone,
        ipAddress=row.ip_address,
        blockedId=row.blocked_id,
        referrerUrl=row.referrer_url,
        createdAt=format_time(row.created_at) or "",
        updatedAt=format_time(row.updated_at) or "",
        deletedAt=format_time(row.deleted_at),
        tracking=dict(row.tracking or {}),
    )


def event_selector(data: ContactCreate) -> tuple[str, dict[str, Any]] | None:
    """The event selector the input gives, by precedence (eventId > linkPrefix > eventName).

    Returns the wire field (where a "not found" is reported) and the lookup arguments.
    """
    if data.eventId is not None:
        return "eventId", {"event_id": data.eventId}
    if data.linkPrefix is not None:
        return "linkPrefix", {"link_prefix": data.linkPrefix}
    if data.eventName is not None:
        return "eventName", {"name": data.eventName}
    return None


EVENT_NOT_FOUND = "Event not found"


async def _event_id(conn: AsyncConnection, account_id: int, data: ContactCreate) -> int | None:
    """Resolve the event selector; an unknown event is a 400 on the selector's key."""
    selector = event_selector(data)
    if selector is None:
        return None
    field, kwargs = selector
    event_id = await find_event_id(conn, account_id, **kwargs)
    if event_id is None:
        raise ValidationFailed(field_errors={field: [EVENT_NOT_FOUND]})
    return event_id


def changed_columns(
    current: Mapping[Any, Any], columns: dict[str, Any], pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    """What one more touch (given columns, UTM pairs) changes on a contact: only differences."""
    tracking = merge_tracking(dict(current["tracking"] or {}), pairs)
    wanted = {**columns, "tracking": tracking}
    return {c: v for c, v in wanted.items() if current.get(c) != v}


async def _given_columns(
    conn: AsyncConnection, account_id: int, data: ContactCreate, now: datetime
) -> dict[str, Any]:
    """Column values for the fields the client gave, resolving the event and the tag."""
    event_id = await _event_id(conn, account_id, data)
    tag_id = None if data.tag is None else await repo.tag_id_for(conn, account_id, data.tag, now)
    return given_columns(data, event_id=event_id, tag_id=tag_id)


async def create_contact(
    conn: AsyncConnection,
    principal: Principal,
    data: ContactCreate,
    *,
    duplicate_email: DuplicateEmailMode,
    now: datetime,
) -> CreateOutcome:
    """Create a contact, or update the live one with the same email (see duplicate_email)."""
    account_id = principal.account_id
    columns = await _given_columns(conn, account_id, data, now)
    pairs = utm_pairs(data.utm, data.referrerUrl)
    email_key = None
    if data.email is not None and duplicate_email != "allow":
        email_key = data.email.lower()
        existing = await repo.find_live_by_email_key(conn, account_id, email_key)
        if existing is not None:
            return await _update_existing(conn, existing, columns, pairs, duplicate_email, now)
    inserted = await repo.insert_contact(
        conn,
        new_contact_values(
            account_id=account_id,
            user_id=principal.user_id,
            email_key=email_key,
            columns=columns,
            pairs=pairs,
            now=now,
        ),
    )
    if inserted is None:
        # A concurrent create of the same email committed first: treat it as the match.
        assert email_key is not None
        existing = await repo.find_live_by_email_key(conn, account_id, email_key)
        if existing is None:  # deleted again since: the email is free
            raise RaceLost(email_key)
        return await _update_existing(conn, existing, columns, pairs, duplicate_email, now)
    return CreateOutcome(inserted, created=True, changed=())


async def _update_existing(
    conn: AsyncConnection,
    existing: repo.ContactRow,
    columns: dict[str, Any],
    pairs: list[tuple[str, str]],
    duplicate_email: DuplicateEmailMode,
    now: datetime,
) -> CreateOutcome:
    if duplicate_email == "reject":
        raise Conflict(EMAIL_TAKEN)
    changed = changed_columns(existing._mapping, columns, pairs)
    if not changed:
        return CreateOutcome(existing, created=False, changed=())
    stamp = after(existing.updated_at, now)  # never before its last change
    row = await repo.update_contact(conn, existing.id, {**changed, "updated_at": stamp})
    return CreateOutcome(row, created=False, changed=tuple(WIRE_NAME[c] for c in changed))
