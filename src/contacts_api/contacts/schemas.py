"""Wire shapes of contacts: the create input (with the vendor's rules) and the contact object."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# The vendor page's patterns, to the letter (see ../shared/spec/create-contact.seed.txt).
EMAIL_PATTERN = (
    r"^(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-\.]*)[A-Za-z0-9_+-]"
    r"@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$"
)
PHONE_PATTERN = r"^\+?\d+$"
JOINED_TIME_PATTERN = (
    r"^(?:(?:\d\d[2468][048]|\d\d[13579][26]|\d\d0[48]|[02468][048]00|[13579][26]00)-02-29"
    r"|\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|(?:02)-(?:0[1-9]|1\d|2[0-8])))"
    r"T(?:(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z))$"
)
STATUSES = ("POTENTIAL", "QUALIFIED", "DISQUALIFIED")

Email = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=EMAIL_PATTERN,
        extra={"message": "Invalid email format"},
        extra_json_schema={"format": "email"},
    ),
]
Phone = Annotated[
    str,
    Meta(max_length=20, pattern=PHONE_PATTERN, extra={"message": "Invalid phone number format"}),
]
# msgspec sorts Literal values; `choices` keeps the vendor's order for error messages.
Status = Annotated[
    Literal["POTENTIAL", "QUALIFIED", "DISQUALIFIED"], Meta(extra={"choices": STATUSES})
]
Tag = Annotated[str, Meta(max_length=100)]
Utm = Annotated[
    str, Meta(max_length=1000, description="A query string: utm_source=google&utm_medium=cpc")
]
Country = Annotated[str, Meta(max_length=2)]
TimeZone = Annotated[str, Meta(max_length=50)]
ReferrerUrl = Annotated[
    str,
    Meta(
        max_length=500,
        extra_json_schema={"format": "uri", "pattern": r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$"},
    ),
]
Name = Annotated[str, Meta(max_length=25)]


class ContactCreate(msgspec.Struct, kw_only=True):
    """Body of POST /v1/contacts. Give email or phoneNumber (or both); unknown keys are ignored."""

    firstName: Name | None = None
    lastName: Name | None = None
    email: Email | None = None
    phoneNumber: Phone | None = None
    status: Status | None = None
    tag: Tag | None = None
    joinedTime: (
        Annotated[
            str,
            Meta(
                pattern=JOINED_TIME_PATTERN,
                extra={"message": "Invalid datetime"},
                extra_json_schema={"format": "date-time"},
            ),
        ]
        | None
    ) = None
    eventName: Annotated[str, Meta(max_length=255)] | None = None
    eventId: (
        Annotated[
            int, Meta(ge=1, le=2**31 - 1, description="Older docs' selector; wins over the others")
        ]
        | None
    ) = None
    linkPrefix: (
        Annotated[
            str, Meta(max_length=255, description="e.g. acme/product-demo; wins over eventName")
        ]
        | None
    ) = None
    utm: Utm | None = None
    country: Country | None = None
    timeZone: TimeZone | None = None
    ipAddress: Annotated[str, Meta(max_length=45)] | None = None
    referrerUrl: ReferrerUrl | None = None


class ContactImport(ContactCreate, kw_only=True):
    """A row of `contacts-api import`: a create body plus the secondary email and phone that
    PUT sets and `export` writes, so that an exported contact imports back whole. Its fields
    extend ContactCreate's at the end, so positions in a ContactCreate tuple hold for it."""

    secondary_email: Email | None = None
    secondary_phoneNumber: Phone | None = None


class ContactRead(msgspec.Struct, omit_defaults=False):
    """The contact object: every key present, null where unset. The fields are in the wire's
    order; contacts/fast_read.py builds it positionally (twice as fast as by keyword)."""

    id: int
    accountId: int
    userId: int
    email: str | None
    firstName: str | None
    lastName: str | None
    status: str
    phoneNumber: str | None
    previewId: str
    tagId: int | None
    blockedByRecaptcha: bool
    joinedTime: str
    country: str | None
    timeZone: str | None
    ipAddress: str | None
    blockedId: int | None
    referrerUrl: str | None
    createdAt: str
    updatedAt: str
    deletedAt: str | None
    tracking: dict[str, str]


class ContactPayload(msgspec.Struct):
    contact: ContactRead


class ContactEnvelope(msgspec.Struct):
    """`{"data": {"contact": {...}}}`: 201 for a new contact, 200 when an email matched."""

    data: ContactPayload
