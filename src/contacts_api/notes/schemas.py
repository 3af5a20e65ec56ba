"""Wire shapes of contact notes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from contacts_api.paging import DEFAULT_LIMIT, Id, Limit, PageNumber

MAX_NOTE_LENGTH = 10_000


class NoteCreate(msgspec.Struct, kw_only=True):
    """Body of POST /v1/contacts/notes."""

    contactId: Id
    note: Annotated[str, Meta(min_length=1, max_length=MAX_NOTE_LENGTH)]


class NoteListQuery(msgspec.Struct, kw_only=True):
    """Query of GET /v1/contacts/notes: the contact, then zero-based paging."""

    contactId: Id
    page: PageNumber | None = 0
    limit: Limit | None = DEFAULT_LIMIT


class NoteRead(msgspec.Struct):
    id: int
    contactId: int
    userId: int
    note: str
    createdAt: str


class NoteCreated(msgspec.Struct):
    """`{"message": "Note created", "status": 201, "data": {...note...}}`."""

    message: Literal["Note created"]
    status: Literal[201]
    data: NoteRead


class NoteList(msgspec.Struct):
    """`{"count": <total>, "data": [...notes, newest first...]}`."""

    count: int
    data: list[NoteRead]
