"""POST /v1/contacts/bulk: translate the request to `bulk_request.create_contacts` and back."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.contacts import bulk, bulk_request, service
from contacts_api.contacts.bulk_schemas import (
    BulkCreateBody,
    BulkEnvelope,
    BulkItemResult,
    BulkResults,
)
from contacts_api.contacts.statistics import GrowthAnalyzer
from contacts_api.http import metrics
from contacts_api.http.auth import CurrentPrincipal
from contacts_api.http.body import read_json
from contacts_api.http.openapi_docs import AUTH_RESPONSES, BODY_RESPONSES
from contacts_api.http.state import app_db, app_settings
from contacts_api.timeutil import utcnow
from contacts_api.webhooks.outbox import record_contact_changes

STATUS = {"created": 201, "updated": 200, "unchanged": 200}


@post(
    "/contacts/bulk",
    status_code=200,
    opt={"request_body": BulkCreateBody},
    responses={**AUTH_RESPONSES, **BODY_RESPONSES},
)
async def create_contacts_bulk(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> Response[BulkEnvelope]:
    """Create or update up to 1,000 contacts; one result per item (an invalid item fails alone)."""
    items = bulk_request.batch_items(await read_json(request))
    db = app_db(request)
    settings = app_settings(request)
    now = utcnow()

    async def work(conn: AsyncConnection) -> list[bulk.ItemResult]:
        return await bulk_request.create_contacts(
            conn,
            principal,
            items,
            duplicate_email=settings.duplicate_email,
            now=now,
            record_change=record_contact_changes,
        )

    results = await db.transaction_retrying(work, "POST /v1/contacts/bulk")
    created = sum(1 for r in results if r.outcome == "created")
    metrics.CONTACTS_CREATED.inc(created)
    analyzer: GrowthAnalyzer | None = request.app.state.analyzer
    if analyzer is not None:  # PostgreSQL's planner must see the table grow
        analyzer.created_contacts(created)
    path, method = request.url.path, request.method
    return Response(
        BulkEnvelope(
            BulkResults(
                [
                    BulkItemResult(
                        r.index, r.error.status, error=r.error.body(path=path, method=method)
                    )
                    if r.error is not None
                    else BulkItemResult(
                        r.index,
                        STATUS[r.outcome],
                        contact=service.contact_read(r.contact) if r.contact else None,
                    )
                    for r in results
                ]
            )
        ),
        status_code=200,
    )
