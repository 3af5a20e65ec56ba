"""Wire shapes of webhooks: subscriptions, the delivery log, and the event names."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from contacts_api.paging import DEFAULT_LIMIT, MAX_ID, Id, Limit, PageNumber

NEW_CONTACT_CREATED = "newContactCreated"
CONTACT_DETAIL_CHANGED = "contactDetailChanged"
CONTACT_DELETED = "contactDeleted"
EVENT_NAMES: tuple[str, ...] = (NEW_CONTACT_CREATED, CONTACT_DETAIL_CHANGED, CONTACT_DELETED)
# Other spellings accepted when subscribing (API.md §6); stored and reported canonically.
EVENT_ALIASES = {
    "contactUpdated": CONTACT_DETAIL_CHANGED,
    "contact.created": NEW_CONTACT_CREATED,
    "contact.updated": CONTACT_DETAIL_CHANGED,
    "contact.deleted": CONTACT_DELETED,
}
# The payload's `hookType`, as iClosed words it.
HOOK_TYPES = {
    NEW_CONTACT_CREATED: "Contact created",
    CONTACT_DETAIL_CHANGED: "Contact updated",
    CONTACT_DELETED: "Contact deleted",
}
URL_MAX_LENGTH = 2000


class WebhookCreate(msgspec.Struct, kw_only=True):
    """Body of POST /v1/webhooks."""

    url: Annotated[str, Meta(max_length=URL_MAX_LENGTH, description="http(s) URL to POST to")]
    events: Annotated[
        list[str],
        Meta(
            min_length=1,
            description="newContactCreated, contactDetailChanged, contactDeleted (or an alias: "
            "contactUpdated, contact.created, contact.updated, contact.deleted)",
        ),
    ]


class WebhookRotate(msgspec.Struct, kw_only=True):
    """Body of POST /v1/webhooks/rotate-secret."""

    id: Annotated[int, Meta(ge=1, le=MAX_ID)]


class WebhookEnable(msgspec.Struct, kw_only=True):
    """Body of POST /v1/webhooks/enable."""

    id: Annotated[int, Meta(ge=1, le=MAX_ID)]
    redeliverFailed: Annotated[
        bool,
        Meta(
            description="Also queue again every failed message it still has (same webhook-id "
            "and body, oldest first), such as those failed when it was disabled"
        ),
    ] = False


class WebhookRedeliver(msgspec.Struct, kw_only=True):
    """Body of POST /v1/webhooks/redeliver: the `webhook-id` of the message to send again."""

    messageId: Annotated[str, Meta(max_length=40)]


class WebhookDeleteQuery(msgspec.Struct, kw_only=True):
    """`id` (required) of DELETE /v1/webhooks."""

    id: Id


class DeliveryListQuery(msgspec.Struct, kw_only=True):
    """Query of GET /v1/webhooks/deliveries: optionally one webhook's, zero-based paging."""

    webhookId: Id | None = None
    page: PageNumber | None = 0
    limit: Limit | None = DEFAULT_LIMIT


class WebhookRead(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A subscription (its secret is never shown again after creation or rotation)."""

    id: int
    url: str
    events: list[str]
    createdAt: str
    disabledAt: str | None
    disabledReason: str | None


class WebhookWithSecret(WebhookRead, kw_only=True):
    """A subscription with its signing secret: answered once, on creation or rotation."""

    secret: str


class WebhookPayload(msgspec.Struct):
    webhook: WebhookWithSecret


class WebhookEnvelope(msgspec.Struct):
    """`{"data": {"webhook": {...}}}`."""

    data: WebhookPayload


class WebhookList(msgspec.Struct):
    webhooks: list[WebhookRead]


class WebhookListEnvelope(msgspec.Struct):
    """`{"data": {"webhooks": [...]}}`."""

    data: WebhookList


class DeliveryRead(msgspec.Struct, kw_only=True, omit_defaults=False):
    """One HTTP attempt of one message."""

    id: int
    webhookId: int
    messageId: str
    eventType: str
    attemptedAt: str
    statusCode: int | None
    latencyMs: int
    response: str | None
    error: str | None
    outcome: str


class DeliveryList(msgspec.Struct):
    count: int
    deliveries: list[DeliveryRead]


class DeliveryListEnvelope(msgspec.Struct):
    """`{"data": {"count": <total>, "deliveries": [...]}}`, newest attempt first."""

    data: DeliveryList


class WebhookEnabled(msgspec.Struct):
    webhook: WebhookRead
    requeued: int  # failed messages queued again (0 unless redeliverFailed)


class WebhookEnabledEnvelope(msgspec.Struct):
    """`{"data": {"webhook": {...}, "requeued": n}}`."""

    data: WebhookEnabled


class RedeliveryQueued(msgspec.Struct):
    message: str
    messageId: str
