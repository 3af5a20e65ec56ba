"""What a refused read does to the requests of its connection (http/server_protocol.py).

uvicorn starts a request's app as its head is parsed, before the rest of the read; the parser
may then refuse what follows (a 400, a 431). Those requests whose app has not started never
do; one whose app is running is owed its answer, sent before the refusal; if the refused bytes
were that request's own body, an app reading it finds the client gone.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable

import msgspec
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from contacts_api.http.envelope import MessageBody
from contacts_api.http.observability import NO_STORE, SECURITY_HEADERS


def closing_response(status: bytes, message: str) -> bytes:
    """A whole response in the API's `{"message": ...}` shape, closing the connection."""
    body = msgspec.json.encode(MessageBody(message))
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n"
        + b"".join(b"%s: %s\r\n" % pair for pair in (*SECURITY_HEADERS, NO_STORE))
        + b"\r\n"
        + body
    )


class BodyRefused:
    """Stands in for a running request's `message_event` once a read of its body was refused:
    the body will never come, so the app's next wait for it finds the client gone (uvicorn's
    `receive` then answers `http.disconnect`, and its `send` sends nothing)."""

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    async def wait(self) -> None:
        self._cycle.disconnected = True

    def set(self) -> None:
        pass

    def clear(self) -> None:
        pass


def settle_requests(
    tasks: Iterable[asyncio.Task[None]], transport: object
) -> list[asyncio.Task[None]]:
    """On a refused read, this connection's requests (`tasks` are the worker's, uvicorn's
    server state holds them all; `transport` tells this connection's): those whose app has
    not started are cancelled; those running and not yet answered are returned, owed their
    answer, and a body they may still read is refused (`BodyRefused`)."""
    owed: list[asyncio.Task[None]] = []
    for task in tasks:
        run = task.get_coro()
        cycle = inspect.getcoroutinelocals(run).get("self")  # type: ignore[arg-type]
        if not isinstance(cycle, RequestResponseCycle) or cycle.transport is not transport:
            continue
        if inspect.getcoroutinestate(run) == inspect.CORO_CREATED:  # type: ignore[arg-type]
            task.cancel()
        elif not cycle.response_complete:
            owed.append(task)
            if cycle.more_body:
                refused = BodyRefused(cycle)  # duck-typed: uvicorn calls these three
                waiting, cycle.message_event = cycle.message_event, refused  # type: ignore[assignment]
                waiting.set()  # an app waiting for the body: it asks again, and learns
    return owed
