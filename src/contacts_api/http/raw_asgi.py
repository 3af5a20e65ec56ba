"""Small pure-ASGI helpers shared by the middleware and the hot route that bypass Litestar."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from contacts_api.errors import AppError

# Plain ASGI types: code here relies on nothing Litestar-specific but `scope["app"]`.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ENCODER = msgspec.json.Encoder()


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    """One complete JSON response, with the headers Litestar would send for it."""
    payload = _ENCODER.encode(body)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(payload)),
    ]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def send_error(scope: Scope, send: Send, error: AppError) -> None:
    """An AppError as the app's exception handlers render it."""
    body = error.body(path=scope["path"], method=scope["method"])
    await send_json(send, error.status, body, error.headers)
