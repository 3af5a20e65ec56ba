"""Wire shapes of POST /v1/contacts/bulk."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from contacts_api.contacts.schemas import ContactCreate, ContactRead


class BulkCreateBody(msgspec.Struct):
    """Up to 1,000 create bodies (a bare JSON array of them is accepted too)."""

    contacts: Annotated[list[ContactCreate], Meta(max_length=1000)]


class BulkItemResult(msgspec.Struct, omit_defaults=True):
    """One item: 201 created, 200 matched by email (updated or not), 400/409 with `error`.

    `error` is the body POST /v1/contacts would have answered for this item alone.
    """

    index: int
    status: int
    contact: ContactRead | None = None
    error: dict[str, Any] | None = None


class BulkResults(msgspec.Struct):
    results: list[BulkItemResult]


class BulkEnvelope(msgspec.Struct):
    """`{"data": {"results": [...]}}`, one result per item, in input order."""

    data: BulkResults
