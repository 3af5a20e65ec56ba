"""Pure-ASGI request wrapper: request id, RateLimit-* and security headers, metrics, access log.

It wraps Litestar's whole ASGI handler rather than sitting in `middleware=`, because Litestar
runs app middleware only after routing, which would miss 404s and 405s.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from contacts_api.http import metrics
from contacts_api.http.ratelimit import Decision

log = structlog.get_logger("contacts_api.access")
_ACCESS = logging.getLogger("contacts_api.access")  # the standard library logger behind `log`

SCOPE_KEY = "contacts_api.request"
# An incoming X-Request-Id is kept when it looks like an id (a proxy's or a client's), so one id
# follows a request across systems; anything else is replaced rather than echoed into logs.
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes would drown the access log; they are still counted in the metrics.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Any token is a valid method on the wire; metric labels keep to these so a scanner cannot
# mint new time series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Log lines keep this much of a path: a route's own paths are far shorter, and a client could
# send one up to the head limit (32 KiB) for each line, holding whatever it likes.
LOGGED_PATH_CHARS = 256
# On every answer, as OWASP's REST Security Cheat Sheet asks of an API: a browser never sniffs
# an answer into HTML or script, nor shows one inside a frame; and no browser or shared cache
# keeps one (answers hold contacts' personal data). An answer that set its own Cache-Control
# keeps it.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
NO_STORE = (b"cache-control", b"no-store")
SECURITY_HEADERS_NO_STORE = (*SECURITY_HEADERS, NO_STORE)


def loggable_path(path: str) -> str:
    """A request's path as log lines show it: cut short past LOGGED_PATH_CHARS."""
    return path if len(path) <= LOGGED_PATH_CHARS else path[:LOGGED_PATH_CHARS] + "…"


class RequestContext:
    """What the layers below tell this wrapper about one request."""

    __slots__ = ("rate", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.rate: Decision | None = None

    @staticmethod
    def of(scope: Any) -> RequestContext | None:
        context: RequestContext | None = scope.get(SCOPE_KEY)
        return context


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("ascii") if SANE_REQUEST_ID.fullmatch(value) else None
    return None


class ObservabilityMiddleware:
    """Wraps every HTTP request: id in logs and headers, rate and security headers, metrics,
    access log."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = incoming_request_id(scope) or os.urandom(8).hex()
        context = RequestContext(request_id)
        scope[SCOPE_KEY] = context  # type: ignore[literal-required]
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or [])
                # ASGI header names are lower case (Litestar and raw_asgi write them so).
                for name, _ in headers:
                    if name == b"cache-control":
                        headers.extend(SECURITY_HEADERS)
                        break
                else:
                    headers.extend(SECURITY_HEADERS_NO_STORE)
                headers.append((b"x-request-id", request_id.encode("ascii")))
                if context.rate is not None:
                    headers.extend(context.rate.headers())
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            route = scope.get("path_template") or "unmatched"
            metrics.observe_request(method, route, status, elapsed)
            # Asked first: below the level (the access log at WARNING) building the event and
            # passing it to structlog only for filter_by_level to drop it was ~2.5 % of a
            # loaded worker's CPU on POST /v1/contacts.
            if (
                self.access_log
                and _ACCESS.isEnabledFor(logging.INFO)
                and scope["path"] not in QUIET_PATHS
            ):
                client = scope.get("client")
                log.info(
                    "request",
                    method=method,
                    path=loggable_path(scope["path"]),
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    client=client[0] if client else None,
                )
            structlog.contextvars.reset_contextvars(**tokens)
