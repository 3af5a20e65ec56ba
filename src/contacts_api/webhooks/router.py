"""HTTP routes for webhooks: translate requests to service calls and back, nothing else."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, post

from contacts_api.http.auth import CurrentPrincipal
from contacts_api.http.body import read_json_object
from contacts_api.http.envelope import MessageBody
from contacts_api.http.openapi_docs import AUTH_RESPONSES, BODY_RESPONSES, message_response
from contacts_api.http.state import app_db, app_settings
from contacts_api.timeutil import utcnow
from contacts_api.webhooks import service
from contacts_api.webhooks.schemas import (
    DeliveryList,
    DeliveryListEnvelope,
    DeliveryListQuery,
    RedeliveryQueued,
    WebhookCreate,
    WebhookDeleteQuery,
    WebhookEnable,
    WebhookEnabled,
    WebhookEnabledEnvelope,
    WebhookEnvelope,
    WebhookList,
    WebhookListEnvelope,
    WebhookPayload,
    WebhookRedeliver,
    WebhookRotate,
)

NOT_FOUND = {404: message_response("Webhook not found (or another account's)")}


@post(
    "/",
    status_code=201,
    opt={"request_body": WebhookCreate},
    responses={**AUTH_RESPONSES, **BODY_RESPONSES},
)
async def create_webhook(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> WebhookEnvelope:
    """Subscribe a URL to contact events; the signing secret is in this answer only."""
    subscription = service.parse_webhook_create(await read_json_object(request))
    settings = app_settings(request)
    await service.check_destination(subscription.url, allow_private=settings.webhooks_allow_private)
    async with app_db(request).transaction() as conn:
        created = await service.create_webhook(conn, principal.account_id, subscription, utcnow())
    return WebhookEnvelope(WebhookPayload(created))


@get("/", responses=AUTH_RESPONSES)
async def list_webhooks(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> WebhookListEnvelope:
    """The account's webhooks (without their secrets)."""
    async with app_db(request).read() as conn:
        webhooks = await service.list_webhooks(conn, principal.account_id)
    return WebhookListEnvelope(WebhookList(webhooks))


@delete(
    "/",
    status_code=200,
    opt={"query": WebhookDeleteQuery},
    responses={**AUTH_RESPONSES, **NOT_FOUND},
)
async def delete_webhook(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> MessageBody:
    """Unsubscribe: nothing more is sent to it, pending messages included."""
    webhook_id = service.parse_delete_query(request.query_params)
    async with app_db(request).transaction() as conn:
        await service.delete_webhook(conn, principal.account_id, webhook_id)
    return MessageBody("Webhook deleted")


@post(
    "/rotate-secret",
    status_code=200,
    opt={"request_body": WebhookRotate},
    responses={**AUTH_RESPONSES, **BODY_RESPONSES, **NOT_FOUND},
)
async def rotate_secret(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> WebhookEnvelope:
    """A new signing secret (shown once); the old one keeps signing beside it for 24 hours."""
    webhook_id = service.parse_webhook_id(await read_json_object(request))
    async with app_db(request).transaction() as conn:
        rotated = await service.rotate_secret(conn, principal.account_id, webhook_id, utcnow())
    return WebhookEnvelope(WebhookPayload(rotated))


@post(
    "/enable",
    status_code=200,
    opt={"request_body": WebhookEnable},
    responses={**AUTH_RESPONSES, **BODY_RESPONSES, **NOT_FOUND},
)
async def enable_webhook(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> WebhookEnabledEnvelope:
    """Enable a disabled webhook in place; with `redeliverFailed`, queue its failed messages
    again (those failed when it was disabled included)."""
    webhook_id, redeliver_failed = service.parse_enable(await read_json_object(request))
    async with app_db(request).transaction() as conn:
        webhook, requeued = await service.enable_webhook(
            conn, principal.account_id, webhook_id, redeliver_failed, utcnow()
        )
    return WebhookEnabledEnvelope(WebhookEnabled(webhook, requeued))


@get(
    "/deliveries",
    opt={"query": DeliveryListQuery},
    responses={**AUTH_RESPONSES, **NOT_FOUND},
)
async def list_deliveries(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> DeliveryListEnvelope:
    """The account's recent delivery attempts, newest first: status, latency, response."""
    webhook_id, page = service.parse_deliveries_query(request.query_params)
    async with app_db(request).read() as conn:
        total, rows = await service.list_deliveries(conn, principal.account_id, webhook_id, page)
    return DeliveryListEnvelope(DeliveryList(total, rows))


@post(
    "/redeliver",
    status_code=202,
    opt={"request_body": WebhookRedeliver},
    responses={
        **AUTH_RESPONSES,
        **BODY_RESPONSES,
        404: message_response("Message not found"),
        409: message_response("The webhook is disabled; enable it first"),
    },
)
async def redeliver(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> Response[RedeliveryQueued]:
    """Send a message again (same webhook-id and body) with a fresh 24-hour retry window."""
    message_id = service.parse_message_id(await read_json_object(request))
    async with app_db(request).transaction() as conn:
        await service.redeliver(conn, principal.account_id, message_id, utcnow())
    return Response(RedeliveryQueued("Redelivery queued", message_id), status_code=202)


webhooks_router = Router(
    path="/webhooks",
    route_handlers=[
        create_webhook,
        list_webhooks,
        delete_webhook,
        rotate_secret,
        enable_webhook,
        list_deliveries,
        redeliver,
    ],
    tags=["webhooks"],
)
