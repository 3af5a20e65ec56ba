"""Reading a JSON body with iClosed's answers for the wrong content type or size."""

from __future__ import annotations

from typing import Any

from litestar import Request

from contacts_api.errors import UnsupportedMediaType
from contacts_api.http.raw_asgi import header
from contacts_api.validation import decode_json, decode_json_object


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


async def read_json(request: Request[Any, Any, Any]) -> Any:
    """The body as any JSON value; 415 for a non-JSON type, 413 (by the app's limit) when too
    large, 400 when malformed."""
    _require_json_media_type(request)
    return decode_json(await request.body())


async def read_json_object(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The body as a dict; 415 for a non-JSON type, 413 (by the app's limit) when too large."""
    _require_json_media_type(request)
    return decode_json_object(await request.body())
