"""iClosed's response shapes that are not tied to one feature (errors, messages)."""

from __future__ import annotations

import msgspec


class MessageBody(msgspec.Struct):
    """`{"message": "..."}`: 401, 404, 409, 413, 415, 500 and friends."""

    message: str


class ErrorDetails(msgspec.Struct):
    formErrors: list[str]
    fieldErrors: dict[str, list[str]]


class ValidationMessage(msgspec.Struct):
    status: int
    details: ErrorDetails
    endpoint: str
    method: str


class ValidationErrorBody(msgspec.Struct):
    """400: every failing field (Zod flatten), with the request's path and method."""

    message: ValidationMessage


class RateLimitWindow(msgspec.Struct):
    points: int
    windowSec: int


class RateLimitBody(msgspec.Struct):
    """429: over the account's budget for this route (or too many failed keys)."""

    code: str
    message: str
    retryAfter: int
    limit: RateLimitWindow
