"""Reading a JSON body with iClosed's answers for the wrong content type or size."""

from __future__ import annotations

import math
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from contacts_api.errors import UnsupportedMediaType, ValidationFailed
from contacts_api.http.raw_asgi import header
from contacts_api.validation import decode_json, decode_json_object


class ClientDisconnected(InternalServerException):
    """The client went away before its whole body arrived: there is no one left to answer,
    and nothing went wrong here (http/error_handlers.py logs it without a traceback)."""


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _require_json_media_type(request: Request[Any, Any, Any]) -> None:
    # From the raw ASGI headers, as the bearer token (http/auth.py): on the hot routes
    # nothing else needs Litestar's Headers, ~3 % of a loaded worker's CPU to build.
    content_type = header(request.scope, b"content-type")  # type: ignore[arg-type]
    if not is_json_media_type(content_type or ""):
        raise UnsupportedMediaType("Content-Type must be application/json")


def body_too_large(limit: float) -> RequestEntityTooLarge:
    """The 413, naming the limit in force (CONTACTS_API_MAX_BODY_BYTES)."""
    size = int(limit)
    if size % (1 << 20) == 0:
        shown = f"{size >> 20} MiB"
    elif size % (1 << 10) == 0:
        shown = f"{size >> 10} KiB"
    else:
        shown = f"{size:,} bytes"
    return RequestEntityTooLarge(detail=f"{TOO_LARGE} (limit {shown})")


TOO_LARGE = "Request body too large"


# The methods whose routes never read a body: it is still held to the limit, by its length.
UNREAD_BODY_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def refuse_announced_overflow(request: Request[Any, Any, Any]) -> None:
    """413 for a GET or DELETE announcing a body over the limit, as POST and PUT answer. Their
    routes never read one: a DELETE with 1.1 MB was carried out and answered 200 (and 413
    with an Idempotency-Key, whose middleware reads every body). A chunked body, with no
    length announced, is not read to find out."""
    if request.method not in UNREAD_BODY_METHODS:
        return
    announced = header(request.scope, b"content-length")  # type: ignore[arg-type]
    if announced is None or not (announced.isascii() and announced.isdigit()):
        return  # absent, or malformed: the server (h11/httptools) refuses the latter itself
    limit = request.route_handler.resolve_request_max_body_size() or math.inf
    if int(announced) > limit:
        raise body_too_large(limit)


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The whole body, with the checks of Litestar's `Request.body()`: 413 when the announced
    length or the bytes received exceed the route handler's limit (the app's 1 MiB).

    Read from the raw ASGI messages: `Request.body()` built Litestar's Headers for the length
    and an async generator for the chunks, ~6 % of a loaded worker's CPU on POST /v1/contacts.
    Nothing reads a body before this (no handler takes Litestar's `data`; the idempotency
    middleware hands its buffered body on through `receive`). Unlike `Request.body()` it does
    not keep the body on the request: call it once per request.
    """
    limit = request.route_handler.resolve_request_max_body_size() or math.inf
    announced = header(request.scope, b"content-length")  # type: ignore[arg-type]
    if announced is not None:
        try:
            length = int(announced)
        except ValueError:
            raise ClientException(f"Invalid content-length: {announced!r}") from None
        if length > limit:
            raise body_too_large(limit)
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("client disconnected prematurely")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        if chunk:
            received += len(chunk)
            if received > limit:
                raise body_too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)  # one chunk (the usual case) comes back as is, uncopied


async def read_json(request: Request[Any, Any, Any]) -> Any:
    """The body as any JSON value; 415 for a non-JSON type or a compressed body, 413 (by the
    app's limit) when too large, 400 when malformed."""
    _require_json_media_type(request)
    raw = await read_body(request)
    try:
        return decode_json(raw)
    except ValidationFailed:
        _refuse_an_encoded_body(request)
        raise


async def read_json_object(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The body as a dict; as read_json, and 400 for any other JSON value."""
    _require_json_media_type(request)
    raw = await read_body(request)
    try:
        return decode_json_object(raw)
    except ValidationFailed:
        _refuse_an_encoded_body(request)
        raise


def _refuse_an_encoded_body(request: Request[Any, Any, Any]) -> None:
    """415 for a body that is not JSON and says it is compressed (`Content-Encoding: gzip`),
    which is not unpacked: it was a 400 "Malformed JSON" of a body the client knew was valid.
    Looked at only once the body failed to decode, nothing on the usual path."""
    encoding = header(request.scope, b"content-encoding")  # type: ignore[arg-type]
    if encoding and encoding.strip().lower() != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding.strip()} is not supported: send the body uncompressed"
        )
