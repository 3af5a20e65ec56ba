"""Wire shapes of events."""

from __future__ import annotations

import msgspec

from contacts_api.paging import PageQuery


class EventListQuery(PageQuery, kw_only=True):
    """Query of GET /v1/events: zero-based paging."""


class EventRead(msgspec.Struct):
    id: int
    name: str
    linkPrefix: str | None
    eventType: str
    createdAt: str


class EventList(msgspec.Struct):
    count: int
    events: list[EventRead]


class EventListEnvelope(msgspec.Struct):
    """`{"data": {"count": <total>, "events": [...]}}`."""

    data: EventList
