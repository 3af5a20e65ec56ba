"""HTTP routes for contact notes: translation only."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.http.auth import CurrentPrincipal
from contacts_api.http.body import read_json_object
from contacts_api.http.openapi_docs import AUTH_RESPONSES, BODY_RESPONSES, message_response
from contacts_api.http.state import app_db
from contacts_api.notes import service
from contacts_api.notes.repository import NoteRow
from contacts_api.notes.schemas import NoteCreate, NoteCreated, NoteList, NoteListQuery
from contacts_api.timeutil import utcnow

NOT_FOUND = {404: message_response("Contact not found (or another account's)")}


@post(
    "/contacts/notes",
    status_code=201,
    opt={"request_body": NoteCreate},
    responses={**AUTH_RESPONSES, **BODY_RESPONSES, **NOT_FOUND},
)
async def create_note(request: Request[Any, Any, Any], principal: CurrentPrincipal) -> NoteCreated:
    """Add a note to a contact."""
    data = service.parse_note_create(await read_json_object(request))
    now = utcnow()

    async def work(conn: AsyncConnection) -> NoteRow:
        return await service.create_note(conn, principal, data, now)

    # Run again when PostgreSQL picks it as a deadlock's victim (it was a 500).
    row = await app_db(request).transaction_retrying(work, "POST /v1/contacts/notes")
    return NoteCreated("Note created", 201, service.note_read(row))


@get(
    "/contacts/notes",
    opt={"query": NoteListQuery},
    responses={**AUTH_RESPONSES, **NOT_FOUND},
)
async def list_notes(request: Request[Any, Any, Any], principal: CurrentPrincipal) -> NoteList:
    """A contact's notes, newest first, with their total count."""
    contact_id, page = service.parse_note_list_query(request.query_params)
    db = app_db(request)
    async with db.read() as conn:
        count, rows = await service.list_notes(conn, principal, contact_id, page)
    return NoteList(count, [service.note_read(row) for row in rows])


NOTE_ROUTES = [create_note, list_notes]
