"""POST /v1/contacts as a pure-ASGI route in front of Litestar: the lead-capture hot path.

Profiled in process (32 concurrent creates at a time, SQLite), Litestar's layers around the
handler — routing, the exception middleware, dependency injection and signature parsing, the
response machinery — cost about as much CPU as the create itself. This route answers the same
requests the same way with the same parts: the /v1 gate (`provide_gated_principal`: key,
failed-key throttling, the account's budget), the body rules of `read_json_object` (415, the
app's 413 limit through the registered route handler, 400), the shared `create_from_request`,
and the app's own exception handlers for every error. Everything else goes on to Litestar:
other paths and methods, and any request with an Idempotency-Key (the idempotency middleware
owns those). The Litestar route stays registered: it is what OpenAPI documents.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request

from contacts_api.contacts.router import CREATE_CONTACT, create_from_request
from contacts_api.http.error_handlers import EXCEPTION_HANDLERS
from contacts_api.http.idempotency import HEADER as IDEMPOTENCY_KEY
from contacts_api.http.ratelimit.guard import provide_gated_principal
from contacts_api.http.raw_asgi import ASGIApp, Receive, Scope, Send, header, send_json

PATH = "/v1/contacts"


class HotCreateRoute:
    """Answers plain POST /v1/contacts itself; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        self.app = app
        index = litestar.get_handler_index_by_name(CREATE_CONTACT)
        if index is None:
            raise RuntimeError(f"route {CREATE_CONTACT!r} is not registered")
        self.route_handler = index["handler"]  # Request.body() reads the size limit from it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or header(scope, IDEMPOTENCY_KEY) is not None
        ):
            await self.app(scope, receive, send)
            return
        # What Litestar's router sets: metrics and the rate-limit key name the route by it.
        scope["path_template"] = PATH
        scope["route_handler"] = self.route_handler
        scope.setdefault("path_params", {})
        request: Request[Any, Any, Any] = Request(scope, receive)  # type: ignore[arg-type]
        try:
            principal = await provide_gated_principal(request)
            status, envelope = await create_from_request(request, principal)
        except Exception as exc:  # rendered by the app's own handlers, as on the Litestar route
            response = _handler_for(exc)(request, exc)
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)  # type: ignore[arg-type]
            return
        await send_json(send, status, envelope)


def _handler_for(exc: Exception) -> Any:
    """The app's exception handler for `exc`, by the most specific class (as Litestar does)."""
    for cls in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(cls)
        if handler is not None:
            return handler
    return EXCEPTION_HANDLERS[Exception]
