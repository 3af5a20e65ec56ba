"""HEAD answered as GET without the body, on every path that serves GET.

HTTP asks it of a server (RFC 9110 §9.3.2: the same status and headers as GET, no content),
and load balancers, uptime checks and link checkers probe with HEAD. Litestar answers HEAD only
where a handler is registered for it, so a HEAD request is run here as a GET: the same key,
rate limit (GET's budget: it is the same work), validation and status. The method is HEAD
again from the response's start, so the access log, the metrics and the server (uvicorn sends
no body for HEAD) see HEAD; the body's bytes are dropped here too, for any other server. The
content-length stays the one GET's body has.
"""

from __future__ import annotations

from contacts_api.http.raw_asgi import Message, Scope, Send


def run_as_get(scope: Scope, send: Send) -> Send:
    """Turn the HEAD request `scope` into a GET (in place, as every layer shares it) and
    return the `send` that gives its answer as HEAD's."""
    scope["method"] = "GET"

    async def send_as_head(message: Message) -> None:
        if message["type"] == "http.response.start":
            scope["method"] = "HEAD"
        elif message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_as_head
