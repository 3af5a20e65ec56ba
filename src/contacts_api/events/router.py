"""HTTP route listing the account's events: translation only."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from contacts_api.events import service
from contacts_api.events.schemas import EventList, EventListEnvelope, EventListQuery
from contacts_api.http.auth import CurrentPrincipal
from contacts_api.http.openapi_docs import AUTH_RESPONSES
from contacts_api.http.state import app_db


@get("/events", opt={"query": EventListQuery}, responses=AUTH_RESPONSES, tags=["events"])
async def list_events(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> EventListEnvelope:
    """The account's bookable events (oldest first), with their total count."""
    page = service.parse_event_list_query(request.query_params)
    db = app_db(request)
    async with db.read() as conn:
        count, events = await service.list_events(conn, principal, page)
    return EventListEnvelope(EventList(count, events))
