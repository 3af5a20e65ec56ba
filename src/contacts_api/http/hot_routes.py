"""The busiest /v1 routes as pure ASGI in front of Litestar, over the very same functions.

Profiled in process (32 concurrent creates at a time, SQLite), Litestar's layers around a
handler — routing, the exception middleware, dependency injection and signature parsing, the
response machinery — cost about as much CPU as the create itself (3.8M -> 2.9M instructions
per POST /v1/contacts without them). A hot route answers the same requests the same way with
the same parts: the /v1 gate (`provide_gated_principal`: key, failed-key throttling, the
account's budget), the route's own work function (shared with its Litestar handler), the body
size limit of the registered route handler, and the app's exception handlers for every error.
Everything else goes on to Litestar: other paths and methods, and any request with an
Idempotency-Key (the idempotency middleware owns those). The Litestar routes stay registered:
they are what OpenAPI documents.

OPTIONS is answered here too, for every fixed path, from Litestar's own route table: this is
the one place in front of Litestar that knows it, and Litestar's OPTIONS handler named only
the methods of the first handler registered for a path. For the same reason HEAD is run here
as GET on every fixed path that serves GET (http/head_as_get.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request
from litestar.routes import HTTPRoute
from litestar.utils.path import normalize_path

from contacts_api.accounts.schemas import Principal
from contacts_api.http.error_handlers import EXCEPTION_HANDLERS
from contacts_api.http.head_as_get import run_as_get
from contacts_api.http.idempotency import HEADER as IDEMPOTENCY_KEY
from contacts_api.http.ratelimit.guard import provide_gated_principal
from contacts_api.http.raw_asgi import ASGIApp, Message, Receive, Scope, Send, header, send_json

# (request, principal) -> (status, body): the work of a route once the caller is admitted.
RouteWork = Callable[[Request[Any, Any, Any], Principal], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class HotRoute:
    method: str
    path: str
    name: str  # the Litestar route handler's name (for its settings, e.g. the body limit)
    work: RouteWork


class HotRoutes:
    """Answers the listed routes itself; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, litestar: Litestar, routes: list[HotRoute]) -> None:
        self.app = app
        self.routes: dict[tuple[str, str], tuple[HotRoute, Any]] = {}
        for route in routes:
            index = litestar.get_handler_index_by_name(route.name)
            if index is None:
                raise RuntimeError(f"route {route.name!r} is not registered")
            self.routes[(route.method, route.path)] = (route, index["handler"])
        # Each fixed path's methods, HEAD wherever GET is (see head_as_get.py).
        self.methods = {
            route.path: route.methods | ({"HEAD"} if "GET" in route.methods else set())
            for route in litestar.routes
            if isinstance(route, HTTPRoute) and "{" not in route.path
        }
        self.head_as_get = {path for path, names in self.methods.items() if "GET" in names}
        # Each fixed path's Allow (Litestar's said `OPTIONS, POST` for /v1/contacts).
        self.allow = {
            path: ", ".join(sorted(names)).encode() for path, names in self.methods.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "HEAD"
            and _route_path(scope) in self.head_as_get
        ):
            try:
                await self.answer(scope, receive, run_as_get(scope, send))
            finally:  # an error the outer layers answer is a HEAD's answer too
                scope["method"] = "HEAD"
            return
        await self.answer(scope, receive, send)

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if found is None or header(scope, IDEMPOTENCY_KEY) is not None:
            await self.pass_on(scope, receive, send)
            return
        route, route_handler = found
        # What Litestar's router sets: metrics and the rate-limit key name the route by its
        # template, and Request.body() reads the size limit from the route handler.
        scope["path_template"] = route.path
        scope["route_handler"] = route_handler
        scope.setdefault("path_params", {})
        request: Request[Any, Any, Any] = Request(scope, receive)  # type: ignore[arg-type]
        try:
            principal = await provide_gated_principal(request)
            status, body = await route.work(request, principal)
        except Exception as exc:  # rendered by the app's own handlers, as on the Litestar route
            response = _handler_for(exc)(request, exc)
            asgi_response = response.to_asgi_response(app=None, request=request)
            await asgi_response(scope, receive, send)  # type: ignore[arg-type]
            return
        await send_json(send, status, body)

    async def pass_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        """To Litestar; but OPTIONS of a fixed path, and the Allow of its 405, from our table."""
        path = _route_path(scope) if scope["type"] == "http" else ""  # "": in no table
        methods = self.methods.get(path)
        if methods is not None and scope["method"] not in methods:
            allow = self.allow[path]
            send = _with_allow(send, allow)  # Litestar's 405 does not name HEAD
        elif methods is not None and scope["method"] == "OPTIONS":
            allow = self.allow[path]
            await send(
                {"type": "http.response.start", "status": 204, "headers": [(b"allow", allow)]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path as Litestar's router matches it: `/healthz/` and `//healthz` are `/healthz`."""
    return normalize_path(scope["path"])


def _with_allow(send: Send, allow: bytes) -> Send:
    async def send_with_allow(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"allow"]
            message = {**message, "headers": [*headers, (b"allow", allow)]}
        await send(message)

    return send_with_allow


def _handler_for(exc: Exception) -> Any:
    """The app's exception handler for `exc`, by the most specific class (as Litestar does)."""
    for cls in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(cls)
        if handler is not None:
            return handler
    return EXCEPTION_HANDLERS[Exception]
