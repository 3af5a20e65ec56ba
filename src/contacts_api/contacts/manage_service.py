"""The rules of listing, detail, update and soft delete (create lives in service.py).

Like service.py, these functions never open a transaction: the caller owns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import manage_repository as repo
from contacts_api.contacts.manage_schemas import (
    ORDER_COLUMN,
    ContactDeleteQuery,
    ContactDetail,
    ContactExtendedRead,
    ContactIdQuery,
    ContactListQuery,
    ContactUpdate,
    EventSummary,
)
from contacts_api.contacts.repository import ContactRow, tag_id_for
from contacts_api.contacts.service import (
    EMAIL_TAKEN,
    PLAIN_FIELDS,
    SECONDARY_FIELDS,
    WIRE_NAME,
    contact_read,
)
from contacts_api.contacts.tracking import merge_tracking, utm_pairs
from contacts_api.errors import Conflict, NotFound, ValidationFailed
from contacts_api.paging import Page
from contacts_api.settings import DuplicateEmailMode
from contacts_api.timeutil import after, parse_zulu, utcnow
from contacts_api.validation import check_fields, check_query, rules_for

CONTACT_NOT_FOUND = "Contact not found"


@dataclass(frozen=True, slots=True)
class ListRequest:
    where: repo.ContactFilter
    order: repo.ContactOrder
    page: Page


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """The contact after the update and the wire names of the fields that changed."""

    contact: ContactRow
    changed: tuple[str, ...]


def _comma_list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def parse_list_query(params: Mapping[str, str]) -> ListRequest:
    """Validate GET /v1/contacts's query; every failing parameter is reported."""
    values, errors = check_query(params, rules_for(ContactListQuery))
    form_errors = []
    if ("orderBy" in values) != ("orderColumn" in values) and not (
        "orderBy" in errors or "orderColumn" in errors
    ):
        form_errors.append("orderBy and orderColumn must be given together")
    if errors or form_errors:
        raise ValidationFailed(form_errors, errors)
    query = ContactListQuery(**values)
    order = repo.ContactOrder()
    if query.orderBy is not None and query.orderColumn is not None:
        order = repo.ContactOrder(ORDER_COLUMN[query.orderColumn], query.orderBy == "desc")
    where = repo.ContactFilter(
        statuses=_comma_list(query.statuses),
        event_ids=tuple(int(part) for part in _comma_list(query.eventIds)),
        user_id=query.userId,
        search=query.search,
        time_from=parse_zulu(query.timeFrom) if query.timeFrom else None,
        time_to=parse_zulu(query.timeTo) if query.timeTo else None,
    )
    return ListRequest(where, order, Page.from_values(values))


def parse_contact_id(
    params: Mapping[str, str], struct: type[msgspec.Struct] = ContactIdQuery
) -> int:
    """The required id parameter of detail (`contactId`) or delete (`id`)."""
    rules = rules_for(struct)
    values, errors = check_query(params, rules, required=tuple(r.name for r in rules))
    if errors:
        raise ValidationFailed(field_errors=errors)
    contact_id = values[rules[0].name]
    assert isinstance(contact_id, int)
    return contact_id


def parse_delete_query(params: Mapping[str, str]) -> int:
    return parse_contact_id(params, ContactDeleteQuery)


def parse_contact_update(body: dict[str, Any]) -> ContactUpdate:
    """Validate a PUT body with create's rules; `id` is required."""
    values, errors = check_fields(body, rules_for(ContactUpdate))
    if "id" not in values and "id" not in errors:
        errors["id"] = ["Required"]
    if errors:
        raise ValidationFailed(field_errors=errors)
    return ContactUpdate(**values)


async def list_contacts(
    conn: AsyncConnection, principal: Principal, request: ListRequest
) -> repo.ContactListing:
    """One page of the account's live contacts matching the filter, and the match count."""
    return await repo.list_contacts(
        conn, principal.account_id, request.where, request.order, request.page
    )


def is_bounded_listing(request: ListRequest) -> bool:
    """Whether the listing costs the same at any account size (Database.raw_read)."""
    return repo.is_bounded_listing(request.where, request.page)


def extended_read(row: Any) -> ContactExtendedRead:
    """The contact object plus secondary_email and secondary_phoneNumber."""
    base = contact_read(row)
    return ContactExtendedRead(
        **{name: getattr(base, name) for name in base.__struct_fields__},
        secondary_email=row.secondary_email,
        secondary_phoneNumber=row.secondary_phone_number,
    )


async def contact_detail(
    conn: AsyncConnection, principal: Principal, contact_id: int
) -> ContactDetail:
    """The account's live contact with its event and tag name, or NotFound. The route answers
    from `fast_read.contact_detail`; tests/contacts/test_fast_read.py holds it to this."""
    row = await repo.get_contact_detail(conn, principal.account_id, contact_id)
    if row is None:
        raise NotFound(CONTACT_NOT_FOUND)
    extended = extended_read(row)
    event = None
    if row.event_id is not None:
        event = EventSummary(row.event_id, row.event_name, row.event_link_prefix, row.event_type)
    return ContactDetail(
        **{name: getattr(extended, name) for name in extended.__struct_fields__},
        event=event,
        tag=row.tag_name,
    )


async def update_contact(
    conn: AsyncConnection,
    principal: Principal,
    data: ContactUpdate,
    *,
    duplicate_email: DuplicateEmailMode,
    now: datetime,
) -> UpdateOutcome:
    """Change the given fields; 409 when the new email belongs to another live contact.

    `updatedAt` moves only when some value actually changed.
    """
    account_id = principal.account_id
    # The tag before the contact's row, in the order creates take them (a create inserts its
    # tag, then locks the contact): the other order deadlocked with them on PostgreSQL. A tag
    # made for a contact that turns out missing goes with the 404's rollback.
    tag_id = await tag_id_for(conn, account_id, data.tag, now) if data.tag is not None else None
    existing = await repo.lock_live_contact(conn, account_id, data.id)
    if existing is None:
        raise NotFound(CONTACT_NOT_FOUND)
    fields = PLAIN_FIELDS | SECONDARY_FIELDS
    wanted: dict[str, Any] = {
        column: getattr(data, wire)
        for wire, column in fields.items()
        if hasattr(data, wire) and getattr(data, wire) is not None
    }
    if tag_id is not None:
        wanted["tag_id"] = tag_id
    pairs = utm_pairs(data.utm, data.referrerUrl)
    if pairs:
        wanted["tracking"] = merge_tracking(dict(existing.tracking or {}), pairs)
    changed = {column: v for column, v in wanted.items() if getattr(existing, column) != v}
    if not changed:
        return UpdateOutcome(existing, ())
    # Stamped now that the contact is locked, after its last change.
    values = {**changed, "updated_at": after(existing.updated_at, max(now, utcnow()))}
    if "email" in changed:
        email_key = None if duplicate_email == "allow" else changed["email"].lower()
        values["email_key"] = email_key
        if email_key is not None and await repo.email_key_taken(
            conn, account_id, email_key, except_id=existing.id
        ):
            raise Conflict(EMAIL_TAKEN)
    row = await repo.update_contact_unless_email_taken(conn, existing.id, values)
    if row is None:
        raise Conflict(EMAIL_TAKEN)
    return UpdateOutcome(row, tuple(WIRE_NAME[column] for column in changed))


async def delete_contact(
    conn: AsyncConnection, principal: Principal, contact_id: int, now: datetime
) -> ContactRow:
    """Soft-delete the account's live contact (hidden everywhere after), or NotFound."""
    existing = await repo.lock_live_contact(conn, principal.account_id, contact_id)
    if existing is None:
        raise NotFound(CONTACT_NOT_FOUND)
    # Stamped now that the contact is locked, after its last change (see timeutil.after).
    stamp = after(existing.updated_at, max(now, utcnow()))
    row = await repo.soft_delete_contact(conn, principal.account_id, contact_id, stamp)
    if row is None:
        raise NotFound(CONTACT_NOT_FOUND)
    return row
