"""Reading a JSON object body with iClosed's answers for the wrong content type or size."""

from __future__ import annotations

from typing import Any

from litestar import Request

from contacts_api.errors import UnsupportedMediaType
from contacts_api.validation import decode_json_object


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_json_object(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The body as a dict; 415 for a non-JSON type, 413 (by the app's limit) when too large."""
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaType("Content-Type must be application/json")
    return decode_json_object(await request.body())
