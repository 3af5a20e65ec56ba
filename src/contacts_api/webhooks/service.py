"""The rules of webhooks: subscriptions, secret rotation, the delivery log and redelivery.

Callers own the transaction. The dispatcher's own rules (what an attempt's result means) live
in `delivery.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.errors import Conflict, NotFound, ValidationFailed
from contacts_api.paging import Page
from contacts_api.timeutil import format_time
from contacts_api.validation import check_fields, check_query, js_type_name, rules_for
from contacts_api.webhooks import repository as repo
from contacts_api.webhooks import rotation, ssrf
from contacts_api.webhooks.schemas import (
    EVENT_ALIASES,
    EVENT_NAMES,
    DeliveryListQuery,
    DeliveryRead,
    WebhookCreate,
    WebhookDeleteQuery,
    WebhookEnable,
    WebhookRead,
    WebhookRedeliver,
    WebhookRotate,
    WebhookWithSecret,
)
from contacts_api.webhooks.signing import new_secret

WEBHOOK_NOT_FOUND = "Webhook not found"


@dataclass(frozen=True, slots=True)
class NewSubscription:
    url: str
    events: list[str]


def _canonical_events(value: list[Any]) -> tuple[list[str], list[str]]:
    """(canonical event names without repeats, error messages) of a non-empty array: one
    message per failing item, as Zod's flatten lists them (it once stopped at the first, and
    named a non-string by Python's repr: `received 'None'`)."""
    names: list[str] = []
    messages: list[str] = []
    expected = " | ".join(f"'{n}'" for n in (*EVENT_NAMES, *EVENT_ALIASES))
    for item in value:
        if not isinstance(item, str):
            messages.append(f"Expected string, received {js_type_name(item)}")
            continue
        name = EVENT_ALIASES.get(item, item)
        if name not in EVENT_NAMES:
            messages.append(f"Invalid enum value. Expected {expected}, received '{item}'")
        elif name not in names:
            names.append(name)
    return ([], messages) if messages else (names, [])


def _require(values: dict[str, Any], errors: dict[str, list[str]], names: tuple[str, ...]) -> None:
    for name in names:
        if name not in values and name not in errors:
            errors[name] = ["Required"]


def parse_webhook_create(body: dict[str, Any]) -> NewSubscription:
    """Validate a subscription body against WebhookCreate; every failing field is reported.

    On top of the schema: event aliases are mapped to canonical names, and the URL must be
    an absolute http(s) URL without credentials (where it resolves is checked later).
    """
    values, errors = check_fields(body, rules_for(WebhookCreate))
    _require(values, errors, ("url", "events"))
    url = values.get("url")
    if isinstance(url, str):
        try:
            ssrf.split_url(url)
        except ssrf.UnsafeUrl:
            errors["url"] = ["Invalid url"]
    events: list[str] = []
    if "events" in values:
        events, messages = _canonical_events(values["events"])
        if messages:
            errors["events"] = messages
    if errors:
        raise ValidationFailed(field_errors=errors)
    assert isinstance(url, str)
    return NewSubscription(url, events)


def parse_webhook_id(body: dict[str, Any]) -> int:
    """The `id` of a body such as rotate-secret's (a positive 32-bit id); `""` is not given,
    as everywhere, so Required."""
    values, errors = check_fields(body, rules_for(WebhookRotate))
    _require(values, errors, ("id",))
    if errors:
        raise ValidationFailed(field_errors=errors)
    return int(values["id"])


def parse_enable(body: dict[str, Any]) -> tuple[int, bool]:
    """(`id`, `redeliverFailed`) of an enable body."""
    values, errors = check_fields(body, rules_for(WebhookEnable))
    _require(values, errors, ("id",))
    if errors:
        raise ValidationFailed(field_errors=errors)
    return int(values["id"]), bool(values.get("redeliverFailed", False))


def parse_message_id(body: dict[str, Any]) -> str:
    """The `messageId` (a `webhook-id`) of a redeliver body, checked against WebhookRedeliver."""
    values, errors = check_fields(body, rules_for(WebhookRedeliver))
    _require(values, errors, ("messageId",))
    if errors:
        raise ValidationFailed(field_errors=errors)
    return str(values["messageId"])


def parse_delete_query(params: Mapping[str, str]) -> int:
    """The required `id` of DELETE /v1/webhooks."""
    values, errors = check_query(params, rules_for(WebhookDeleteQuery), required=("id",))
    if errors:
        raise ValidationFailed(field_errors=errors)
    return int(values["id"])


def parse_deliveries_query(params: Mapping[str, str]) -> tuple[int | None, Page]:
    """(`webhookId` or None, the page) of GET /v1/webhooks/deliveries."""
    values, errors = check_query(params, rules_for(DeliveryListQuery))
    if errors:
        raise ValidationFailed(field_errors=errors)
    webhook_id = values.get("webhookId")
    return (int(webhook_id) if webhook_id is not None else None), Page.from_values(values)


def webhook_read(row: repo.Row) -> WebhookRead:
    return WebhookRead(
        id=row.id,
        url=row.url,
        events=list(row.events),
        createdAt=format_time(row.created_at) or "",
        disabledAt=format_time(row.disabled_at),
        disabledReason=row.disabled_reason,
    )


def with_secret(row: repo.Row) -> WebhookWithSecret:
    read = webhook_read(row)
    return WebhookWithSecret(
        **{f: getattr(read, f) for f in read.__struct_fields__}, secret=row.secret
    )


async def check_destination(url: str, *, allow_private: bool) -> None:
    """400 on `url` when it resolves to an address we refuse to call (SSRF guard)."""
    try:
        await ssrf.checked_address(url, allow_private=allow_private)
    except ssrf.UnsafeUrl as exc:
        raise ValidationFailed(field_errors={"url": [str(exc)]}) from None


# [choice] Every change of a contact writes one outbox row per subscribed webhook: without a
# bound, an account could multiply each change without end. Disabled webhooks count too
# (delete one to make room).
MAX_WEBHOOKS_PER_ACCOUNT = 25
TOO_MANY_WEBHOOKS = f"An account can have at most {MAX_WEBHOOKS_PER_ACCOUNT} webhooks"


async def create_webhook(
    conn: AsyncConnection, account_id: int, subscription: NewSubscription, now: datetime
) -> WebhookWithSecret:
    """Subscribe; the answer carries the signing secret, which is never shown again.

    Call `check_destination` first, outside the transaction (it waits on DNS).
    """
    if await repo.count_endpoints_locked(conn, account_id) >= MAX_WEBHOOKS_PER_ACCOUNT:
        raise ValidationFailed([TOO_MANY_WEBHOOKS])
    row = await repo.insert_endpoint(
        conn,
        {
            "account_id": account_id,
            "url": subscription.url,
            "events": subscription.events,
            "secret": new_secret(),
            "created_at": now,
        },
    )
    return with_secret(row)


async def list_webhooks(conn: AsyncConnection, account_id: int) -> list[WebhookRead]:
    return [webhook_read(r) for r in await repo.list_endpoints(conn, account_id)]


async def delete_webhook(conn: AsyncConnection, account_id: int, webhook_id: int) -> None:
    """Unsubscribe: the webhook, its pending messages and its log are gone."""
    if not await repo.delete_endpoint(conn, account_id, webhook_id):
        raise NotFound(WEBHOOK_NOT_FOUND)


async def rotate_secret(
    conn: AsyncConnection, account_id: int, webhook_id: int, now: datetime
) -> WebhookWithSecret:
    """A new secret; the one it replaces keeps signing (beside it) for 24 hours, and so do
    those replaced earlier that are still within their day (rotation.py).

    The row is locked first: two rotations at once would both replace the same secret,
    and the secret the first one answered would never sign.
    """
    row = await repo.get_account_endpoint(conn, account_id, webhook_id, lock=True)
    if row is None:
        raise NotFound(WEBHOOK_NOT_FOUND)
    row = await repo.update_endpoint(conn, row.id, rotation.rotated(row, now))
    return with_secret(row)


async def list_deliveries(
    conn: AsyncConnection, account_id: int, webhook_id: int | None, page: Page
) -> tuple[int, list[DeliveryRead]]:
    """The account's recent attempts, newest first (optionally of one webhook).

    A `webhook_id` that is not one of the account's webhooks is a 404, not an empty list.
    """
    if (
        webhook_id is not None
        and await repo.get_account_endpoint(conn, account_id, webhook_id) is None
    ):
        raise NotFound(WEBHOOK_NOT_FOUND)
    total, rows = await repo.list_attempts(conn, account_id, webhook_id, page.offset, page.limit)
    return total, [
        DeliveryRead(
            id=r.id,
            webhookId=r.endpoint_id,
            messageId=r.webhook_id,
            eventType=r.event_type,
            attemptedAt=format_time(r.attempted_at) or "",
            statusCode=r.status_code,
            latencyMs=r.latency_ms,
            response=r.response_snippet,
            error=r.error,
            outcome=r.outcome,
        )
        for r in rows
    ]


async def redeliver(conn: AsyncConnection, account_id: int, message_id: str, now: datetime) -> None:
    """Queue a message again (same `webhook-id`, same body, a fresh 24-hour retry window).

    It goes back to its place in its endpoint's queue, which is by age: before any younger
    message still pending for that endpoint.
    """
    message = await repo.find_message(conn, account_id, message_id)
    if message is None:
        raise NotFound("Message not found")
    endpoint = await repo.get_endpoint(conn, message.endpoint_id)
    if endpoint is None or endpoint.disabled_at is not None:
        raise Conflict("The webhook is disabled; enable it first")
    requeued = await repo.update_message(conn, message.id, _queued_again(now))
    if not requeued:  # pruned since it was found (webhooks/retention.py)
        raise NotFound("Message not found")


async def enable_webhook(
    conn: AsyncConnection, account_id: int, webhook_id: int, redeliver_failed: bool, now: datetime
) -> tuple[WebhookRead, int]:
    """Enable a webhook in place (a no-op on an enabled one): events are queued for it again,
    and its 24 hours of failures before disabling start afresh. With `redeliver_failed`, every
    failed message it still has (retention keeps them 30 days) goes back in its queue, each at
    its place by age: those failed when it was disabled, and those given up. Returns the
    webhook and how many messages were queued again.

    The row is locked first, as a dispatcher disabling it at the same moment would be.
    """
    row = await repo.get_account_endpoint(conn, account_id, webhook_id, lock=True)
    if row is None:
        raise NotFound(WEBHOOK_NOT_FOUND)
    if row.disabled_at is not None:
        row = await repo.update_endpoint(
            conn, row.id, {"disabled_at": None, "disabled_reason": None, "failing_since": None}
        )
    requeued = (
        await repo.requeue_failed_messages(conn, row.id, _queued_again(now))
        if redeliver_failed
        else 0
    )
    return webhook_read(row), requeued


def _queued_again(now: datetime) -> dict[str, Any]:
    """A message's columns when it goes back in its queue: due now, a fresh 24-hour window,
    and its retry schedule started over (5 s, 10 s, ...; the earlier failures had it waiting
    40 s after its first new failure, and an hour after a given-up one)."""
    return {
        "status": repo.PENDING,
        "next_attempt_at": now,
        "first_attempt_at": None,
        "completed_at": None,
        "attempt_count": 0,
    }
