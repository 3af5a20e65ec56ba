"""POST /v1/contacts/bulk: the body's items, each validated as POST /v1/contacts validates a
body, and upserted together (contacts/bulk.py); an invalid item fails alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import service
from contacts_api.contacts.bulk import BulkItem, BulkUpserter, ChangeRecorder, ItemResult
from contacts_api.errors import ValidationFailed
from contacts_api.settings import DuplicateEmailMode
from contacts_api.validation import js_type_name

MAX_BATCH_ITEMS = 1000


def batch_items(body: Any) -> list[Any]:
    """The items of a POST /v1/contacts/bulk body: `{"contacts": [...]}` or a bare array."""
    if not isinstance(body, (dict, list)):  # a body not an object: a form error (API.md 2)
        raise ValidationFailed([f"Expected object, received {js_type_name(body)}"])
    if isinstance(body, dict) and "contacts" not in body:  # as Zod names a missing key
        raise ValidationFailed(field_errors={"contacts": ["Required"]})
    items = body.get("contacts") if isinstance(body, dict) else body
    if not isinstance(items, list):
        received = js_type_name(items)
        raise ValidationFailed(field_errors={"contacts": [f"Expected array, received {received}"]})
    if len(items) > MAX_BATCH_ITEMS:
        message = f"Array must contain at most {MAX_BATCH_ITEMS} element(s)"
        raise ValidationFailed(field_errors={"contacts": [message]})
    return items


async def create_contacts(
    conn: AsyncConnection,
    principal: Principal,
    items: list[Any],
    *,
    duplicate_email: DuplicateEmailMode,
    now: datetime,
    record_change: ChangeRecorder | None = None,
) -> list[ItemResult]:
    """Create or update each item as POST /v1/contacts would; an invalid item fails alone.

    Each successful result carries its contact as the batch left it (`ItemResult.contact`)."""
    results: dict[int, ItemResult] = {}
    valid: list[BulkItem] = []
    for index, body in enumerate(items):
        try:
            if not isinstance(body, dict):
                raise ValidationFailed([f"Expected object, received {js_type_name(body)}"])
            valid.append(BulkItem(index, service.parse_contact_create(body)))
        except ValidationFailed as exc:
            results[index] = ItemResult(index, "failed", error=exc)
    upserter = BulkUpserter(
        principal.account_id,
        principal.user_id,
        duplicate_email=duplicate_email,
        record_change=record_change,
    )
    for result in await upserter.upsert(conn, valid, now):
        results[result.index] = result
    return [results[index] for index in range(len(items))]
