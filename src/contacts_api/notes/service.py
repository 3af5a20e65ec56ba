"""Notes on contacts: written by the key's user, readable by the account."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts.manage_service import CONTACT_NOT_FOUND
from contacts_api.contacts.repository import get_live_contact
from contacts_api.errors import NotFound, ValidationFailed
from contacts_api.notes import repository as repo
from contacts_api.notes.schemas import NoteCreate, NoteListQuery, NoteRead
from contacts_api.paging import Page
from contacts_api.timeutil import format_time
from contacts_api.validation import check_fields, check_query, rules_for


def parse_note_create(body: dict[str, Any]) -> NoteCreate:
    """Validate a note body: contactId and a note of 1-10,000 characters."""
    values, errors = check_fields(body, rules_for(NoteCreate))
    for name in ("contactId", "note"):
        if name not in values and name not in errors:
            errors[name] = ["Required"]
    if errors:
        raise ValidationFailed(field_errors=errors)
    return NoteCreate(**values)


def parse_note_list_query(params: Mapping[str, str]) -> tuple[int, Page]:
    """The contact id and page of GET /v1/contacts/notes."""
    values, errors = check_query(params, rules_for(NoteListQuery), required=("contactId",))
    if errors:
        raise ValidationFailed(field_errors=errors)
    return int(values["contactId"]), Page.from_values(values)


def note_read(row: repo.NoteRow) -> NoteRead:
    return NoteRead(
        id=row.id,
        contactId=row.contact_id,
        userId=row.user_id,
        note=row.note,
        createdAt=format_time(row.created_at) or "",
    )


async def _require_contact(conn: AsyncConnection, principal: Principal, contact_id: int) -> None:
    if await get_live_contact(conn, principal.account_id, contact_id) is None:
        raise NotFound(CONTACT_NOT_FOUND)


async def create_note(
    conn: AsyncConnection, principal: Principal, data: NoteCreate, now: datetime
) -> repo.NoteRow:
    """Add a note to a live contact of the account, or NotFound."""
    await _require_contact(conn, principal, data.contactId)
    return await repo.insert_note(
        conn,
        account_id=principal.account_id,
        contact_id=data.contactId,
        user_id=principal.user_id,
        note=data.note,
        now=now,
    )


async def list_notes(
    conn: AsyncConnection, principal: Principal, contact_id: int, page: Page
) -> tuple[int, list[repo.NoteRow]]:
    """A page of a live contact's notes (newest first) and their total, or NotFound."""
    await _require_contact(conn, principal, contact_id)
    return await repo.list_notes(conn, contact_id, page)
