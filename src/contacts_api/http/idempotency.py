"""Idempotency-Key on POST/PUT/DELETE under /v1, as pure ASGI middleware (API.md §6).

The middleware buffers the request body (to fingerprint it), claims the key for the
caller's account, runs the route while passing its answer through, and stores that answer
for replays. A 5xx or 429 answer (or a crash) releases the key, so a retry runs again
instead of replaying a failure. Requests without the header pass through
untouched; with it, the caller is gated here (key, budget) exactly as the route would, and a
401 or 429 is answered without claiming anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from litestar import Request

from contacts_api.errors import AppError, ValidationFailed
from contacts_api.http.body import body_too_large
from contacts_api.http.error_handlers import as_app_error
from contacts_api.http.ratelimit.guard import provide_gated_principal
from contacts_api.http.raw_asgi import ASGIApp, Message, Receive, Scope, Send, header, send_error
from contacts_api.idempotency import service
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.outage import log_failure
from contacts_api.timeutil import utcnow

log = structlog.get_logger(__name__)

METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
# Set by the server for each response, never part of what is replayed.
NOT_STORED_HEADERS = frozenset({"date", "server"})
REPLAYED = (b"idempotent-replayed", b"true")


@dataclass(slots=True)
class BufferedBody:
    """What was read of the request body before deciding whether to claim the key."""

    data: bytes
    ended: bool  # the client sent its last chunk
    too_large: bool  # over the server's limit: answered 413 at once, nothing is claimed
    disconnected: bool


async def _read_body(receive: Receive, limit: int) -> BufferedBody:
    """Read the body, stopping early once it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return BufferedBody(b"".join(chunks), False, False, True)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        ended = not message.get("more_body", False)
        if ended or size > limit:
            return BufferedBody(b"".join(chunks), ended, size > limit, False)


def _replaying_receive(body: BufferedBody, receive: Receive) -> Receive:
    """A receive that first yields the buffered body, then (if cut short) the rest."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body.data, "more_body": not body.ended}
        return await receive()

    return replay


def idempotency_middleware(app: ASGIApp) -> Any:  # Any: Litestar types ASGI apps its own way
    """Wrap the /v1 routes: see the module docstring."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await app(scope, receive, send)
            return
        key = header(scope, HEADER)
        if key is None:
            await app(scope, receive, send)
            return
        state = scope["app"].state
        db: Database = state.db
        settings: Settings = state.settings
        try:
            # The same gate as the route's dependency (key, failed-key throttling, the
            # account's budget), once: a replay is rate-limited and carries RateLimit-* too.
            principal = await provide_gated_principal(Request(scope))  # type: ignore[arg-type]
        except AppError as refused:  # 401 or 429, exactly as the route would answer
            await send_error(scope, send, refused)
            return
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            error = ValidationFailed([f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters"])
            await send_error(scope, send, error)
            return
        body = await _read_body(receive, settings.max_body_bytes)
        if body.disconnected:
            return
        if body.too_large:
            # The route's 413, here: a route that never reads its body (DELETE) ran, and
            # nothing was stored, so a retry with the same key ran again (a 404).
            await send_error(scope, send, as_app_error(body_too_large(settings.max_body_bytes)))
            return
        fingerprint = service.fingerprint(
            scope["method"], scope["path"], scope.get("query_string", b""), body.data
        )
        try:
            outcome = await service.claim(db, principal.account_id, key, fingerprint, utcnow())
        except AppError as error:
            await send_error(scope, send, error)
            return
        if isinstance(outcome, service.StoredResponse):
            await _replay(outcome, send)
            return
        await _run_and_store(app, scope, _replaying_receive(body, receive), send, outcome, db)

    return middleware


async def _replay(stored: service.StoredResponse, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    await send(
        {"type": "http.response.start", "status": stored.status, "headers": [*headers, REPLAYED]}
    )
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


async def _run_and_store(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, claim: service.Claim, db: Database
) -> None:
    status = 500
    headers: list[list[str]] = []
    chunks: list[bytes] = []
    # The answer is held back until it is stored: a client that retries the moment it has its
    # answer must get the replay, not "still in progress" (409), as it did ~1 time in 10 when
    # the answer went out first.
    held: list[Message] = []

    async def capture(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.extend(
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in message.get("headers", [])
                if k.decode("latin-1").lower() not in NOT_STORED_HEADERS
            )
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
        held.append(message)

    try:
        await app(scope, receive, capture)
    except BaseException:
        await _release(db, claim)
        raise
    if status >= 500 or status == 429:
        await _release(db, claim)
    else:
        stored = service.StoredResponse(status, headers, b"".join(chunks))
        try:
            await service.complete(db, claim, stored)
        except Exception as exc:
            # Without a stored copy a retry runs again; the answer goes out all the same.
            log_failure(log, exc, "could not store an idempotent response", status=status)
            await _release(db, claim)
    for message in held:
        await send(message)


async def _release(db: Database, claim: service.Claim) -> None:
    """Release the key, never raising: when the database has just gone away, the answer held
    back (a write that did commit, or the 503 saying the database is down) must still reach
    the client, not be lost to a plain-text 500. The claim then stays until it is stale
    (service.STALE_CLAIM), and a retry meanwhile is told the request is still in progress."""
    try:
        await service.release(db, claim)
    except Exception as exc:
        log_failure(log, exc, "could not release an Idempotency-Key")
