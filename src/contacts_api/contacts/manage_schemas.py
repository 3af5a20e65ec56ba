"""Wire shapes of listing, detail, update and delete (the create shapes are in schemas.py)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from contacts_api.contacts.schemas import (
    JOINED_TIME_PATTERN,
    ContactRead,
    Country,
    Email,
    Name,
    Phone,
    ReferrerUrl,
    Status,
    Tag,
    TimeZone,
    Utm,
)
from contacts_api.paging import DEFAULT_LIMIT, Id, Limit, PageNumber

# Wire name of each orderColumn -> its column, in API.md's order; storage/models.py indexes
# each column (CONTACT_ORDER_COLUMNS, the same columns in the same order).
ORDER_COLUMN = {
    "id": "id",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "joinedTime": "joined_time",
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
}
ORDER_COLUMNS = tuple(ORDER_COLUMN)
# The choices named in API.md's order (an error lists them so, as Zod does; msgspec would
# sort them). Written out for type checkers; tests/contacts/test_list.py holds it to
# ORDER_COLUMNS.
OrderColumn = Annotated[
    Literal["id", "createdAt", "updatedAt", "joinedTime", "firstName", "lastName", "email"],
    Meta(extra={"choices": ORDER_COLUMNS}),
]
ZuluTime = Annotated[
    str,
    Meta(
        pattern=JOINED_TIME_PATTERN,
        extra={"message": "Invalid datetime"},
        extra_json_schema={"format": "date-time"},
        description="UTC, e.g. 2024-01-15T10:00:00.000Z",
    ),
]


class ContactListQuery(msgspec.Struct, kw_only=True):
    """Query of GET /v1/contacts. orderBy and orderColumn go together (both or neither)."""

    page: PageNumber | None = 0
    limit: Limit | None = DEFAULT_LIMIT
    statuses: (
        Annotated[str, Meta(max_length=1000, description="Comma list, e.g. POTENTIAL,QUALIFIED")]
        | None
    ) = None
    eventIds: (
        Annotated[
            str,
            Meta(
                max_length=1000,
                pattern=r"^\d{1,9}(,\d{1,9})*$",
                extra={"message": "Expected a comma-separated list of event ids"},
                description="Comma list of event ids, e.g. 3,7",
            ),
        ]
        | None
    ) = None
    userId: Id | None = None
    search: (
        Annotated[
            str, Meta(max_length=255, description="Substring of first/last name, email, phone")
        ]
        | None
    ) = None
    timeFrom: (
        Annotated[ZuluTime, Meta(description="joinedTime at or after this instant")] | None
    ) = None
    timeTo: Annotated[ZuluTime, Meta(description="joinedTime at or before this instant")] | None = (
        None
    )
    orderBy: Literal["asc", "desc"] | None = None
    orderColumn: OrderColumn | None = None


class ContactIdQuery(msgspec.Struct, kw_only=True):
    """`contactId` (required) of GET /v1/contacts/detail."""

    contactId: Id


class ContactDeleteQuery(msgspec.Struct, kw_only=True):
    """`id` (required) of DELETE /v1/contacts."""

    id: Id


class ContactUpdate(msgspec.Struct, kw_only=True):
    """Body of PUT /v1/contacts: `id` plus the fields to change (others stay as they are)."""

    id: Id
    firstName: Name | None = None
    lastName: Name | None = None
    email: Email | None = None
    secondary_email: Email | None = None
    phoneNumber: Phone | None = None
    secondary_phoneNumber: Phone | None = None
    status: Status | None = None
    referrerUrl: ReferrerUrl | None = None
    tag: Tag | None = None
    utm: Utm | None = None
    country: Country | None = None
    timeZone: TimeZone | None = None


class ContactExtendedRead(ContactRead, kw_only=True):
    """The contact object plus the secondary email and phone (update and detail)."""

    secondary_email: str | None
    secondary_phoneNumber: str | None


class EventSummary(msgspec.Struct):
    id: int
    name: str
    linkPrefix: str | None
    eventType: str


class ContactDetail(ContactExtendedRead, kw_only=True):
    """Detail: the extended contact, its event (or null) and its tag's name (or null)."""

    event: EventSummary | None
    tag: str | None


class ContactDetailEnvelope(msgspec.Struct):
    """`{"data": {...contact...}}`: not wrapped in `contact`, unlike the other routes."""

    data: ContactDetail


class ContactExtendedPayload(msgspec.Struct):
    contact: ContactExtendedRead


class ContactExtendedEnvelope(msgspec.Struct):
    """`{"data": {"contact": {...}}}` with secondary_email and secondary_phoneNumber."""

    data: ContactExtendedPayload


class ContactList(msgspec.Struct):
    count: int
    contacts: list[ContactRead]


class ContactListEnvelope(msgspec.Struct):
    """`{"data": {"count": <total matches>, "contacts": [...]}}`."""

    data: ContactList
