"""HTTP routes to list, read, update and delete contacts: translation only."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, put
from litestar.openapi import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import fast_read
from contacts_api.contacts import manage_service as service
from contacts_api.contacts.manage_schemas import (
    ContactDeleteQuery,
    ContactDetailEnvelope,
    ContactExtendedEnvelope,
    ContactExtendedPayload,
    ContactIdQuery,
    ContactList,
    ContactListEnvelope,
    ContactListQuery,
    ContactUpdate,
)
from contacts_api.contacts.repository import ContactRow
from contacts_api.contacts.schemas import ContactEnvelope, ContactPayload
from contacts_api.contacts.service import contact_read
from contacts_api.http.auth import CurrentPrincipal
from contacts_api.http.body import read_json_object
from contacts_api.http.openapi_docs import (
    AUTH_RESPONSES,
    BODY_RESPONSES,
    IDEMPOTENCY_RESPONSES,
    message_response,
)
from contacts_api.http.state import app_db, app_settings
from contacts_api.timeutil import utcnow
from contacts_api.webhooks.outbox import record_contact_event
from contacts_api.webhooks.schemas import CONTACT_DELETED, CONTACT_DETAIL_CHANGED

NOT_FOUND = {404: message_response("Contact not found (or another account's)")}
_NEW_ID = "$response.body#/data/contact/id"
# OpenAPI links from an answer carrying a contact to the operations that take its id.
CONTACT_LINKS = {
    "GetContactDetail": ("GET", "/v1/contacts/detail", {"contactId": _NEW_ID}),
    "ListContactNotes": ("GET", "/v1/contacts/notes", {"contactId": _NEW_ID}),
    "DeleteContact": ("DELETE", "/v1/contacts", {"id": _NEW_ID}),
}


LIST_CONTACTS = "list_contacts"  # route names, by which their hot routes find them
CONTACT_DETAIL = "contact_detail"


@get(
    "/contacts",
    name=LIST_CONTACTS,
    opt={"query": ContactListQuery},
    responses=AUTH_RESPONSES,
)
async def list_contacts(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> ContactListEnvelope:
    """List the account's contacts: filters, ordering, zero-based paging, total count."""
    return (await list_from_request(request, principal))[1]


async def list_from_request(
    request: Request[Any, Any, Any], principal: Principal
) -> tuple[int, ContactListEnvelope]:
    """The work of GET /v1/contacts once the caller is admitted (shared with its hot route)."""
    list_request = service.parse_list_query(request.query_params)
    db = app_db(request)
    if service.is_bounded_listing(list_request):  # the maintained count, a short index walk
        page = await db.raw_read(
            lambda reader: fast_read.list_page(
                reader, principal.account_id, list_request.order, list_request.page
            )
        )
        return 200, ContactListEnvelope(page)
    async with db.read() as conn:  # a filter to count, or a deep page: off the event loop
        listing = await service.list_contacts(conn, principal, list_request)
    contacts = [contact_read(row) for row in listing.rows]
    return 200, ContactListEnvelope(ContactList(listing.count, contacts))


@get(
    "/contacts/detail",
    name=CONTACT_DETAIL,
    opt={"query": ContactIdQuery},
    responses={**AUTH_RESPONSES, **NOT_FOUND},
)
async def contact_detail(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> ContactDetailEnvelope:
    """One contact with its secondary email/phone, event and tag name."""
    return (await detail_from_request(request, principal))[1]


async def detail_from_request(
    request: Request[Any, Any, Any], principal: Principal
) -> tuple[int, ContactDetailEnvelope]:
    """The work of GET /v1/contacts/detail once the caller is admitted (shared with its hot
    route): one primary-key probe, bounded whatever the account's size."""
    contact_id = service.parse_contact_id(request.query_params)
    detail = await app_db(request).raw_read(
        lambda reader: fast_read.contact_detail(reader, principal.account_id, contact_id)
    )
    return 200, ContactDetailEnvelope(detail)


@put(
    "/contacts",
    opt={"request_body": ContactUpdate},
    responses={
        **AUTH_RESPONSES,
        **BODY_RESPONSES,
        **NOT_FOUND,
        **IDEMPOTENCY_RESPONSES,
        409: message_response("The new email belongs to another contact of the account"),
    },
)
async def update_contact(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> ContactExtendedEnvelope:
    """Change the given fields of a contact (partial update, create's rules)."""
    data = service.parse_contact_update(await read_json_object(request))
    settings = app_settings(request)
    now = utcnow()

    async def work(conn: AsyncConnection) -> service.UpdateOutcome:
        outcome = await service.update_contact(
            conn, principal, data, duplicate_email=settings.duplicate_email, now=now
        )
        if outcome.changed:  # same transaction: queued if and only if the change commits
            await record_contact_event(
                conn,
                account_id=principal.account_id,
                kind=CONTACT_DETAIL_CHANGED,
                contact_row=outcome.contact,
                updated_attributes=outcome.changed,
                now=now,
            )
        return outcome

    outcome = await app_db(request).transaction_retrying(work, "PUT /v1/contacts")
    return ContactExtendedEnvelope(ContactExtendedPayload(service.extended_read(outcome.contact)))


@delete(
    "/contacts",
    status_code=200,
    opt={"query": ContactDeleteQuery},
    responses={
        **AUTH_RESPONSES,
        **NOT_FOUND,
        **IDEMPOTENCY_RESPONSES,
        200: ResponseSpec(data_container=ContactEnvelope, description="The deleted contact"),
    },
)
async def delete_contact(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> ContactEnvelope:
    """Soft-delete a contact: hidden from every route after; its email is free again."""
    contact_id = service.parse_delete_query(request.query_params)
    now = utcnow()

    async def work(conn: AsyncConnection) -> ContactRow:
        row = await service.delete_contact(conn, principal, contact_id, now)
        await record_contact_event(
            conn,
            account_id=principal.account_id,
            kind=CONTACT_DELETED,
            contact_row=row,
            updated_attributes=("deletedAt",),
            now=now,
        )
        return row

    # Run again when PostgreSQL picks it as a deadlock's victim, as PUT is (it was a 500).
    row = await app_db(request).transaction_retrying(work, "DELETE /v1/contacts")
    return ContactEnvelope(ContactPayload(contact_read(row)))


CONTACT_MANAGE_ROUTES = [list_contacts, contact_detail, update_contact, delete_contact]
