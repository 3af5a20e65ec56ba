"""The AppError family: each error knows its HTTP status and its iClosed-shaped body.

Plain classes, free of the web framework, so services, the CLI and the importer can raise and
catch them too; `http/error_handlers.py` renders them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contacts_api.settings import Rate


class AppError(Exception):
    """An error a client is meant to see: `status` and the JSON `body` it answers with."""

    status: int = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def body(self, *, path: str, method: str) -> dict[str, Any]:
        return {"message": self.message}


class ValidationFailed(AppError):
    """Input broke the contract: 400 in Zod's flatten() shape, listing every failing field."""

    status = 400

    def __init__(
        self,
        form_errors: list[str] | None = None,
        field_errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__("Validation failed")
        self.form_errors = form_errors or []
        self.field_errors = field_errors or {}

    def body(self, *, path: str, method: str) -> dict[str, Any]:
        return {
            "message": {
                "status": 400,
                "details": {"formErrors": self.form_errors, "fieldErrors": self.field_errors},
                "endpoint": path,
                "method": method,
            }
        }


class Unauthorized(AppError):
    """401, with the `WWW-Authenticate` challenge HTTP requires of it (RFC 9110 §11.6.1)."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409


class UnsupportedMediaType(AppError):
    status = 415


class Unprocessable(AppError):
    status = 422


class TooManyRequests(AppError):
    status = 429


class ServiceUnavailable(AppError):
    status = 503


class InternalError(AppError):
    status = 500

    def __init__(self) -> None:
        super().__init__("Internal server error")


class UserError(Exception):
    """A CLI/operator mistake (unknown account, unreadable file): one clear line, exit 1."""


class RateLimitExceeded(TooManyRequests):
    """Over an account's (or a client address's failed-key) budget: API.md §3's 429 body."""

    def __init__(self, rate: Rate, retry_after: int) -> None:
        super().__init__(
            "Too many requests, please try again later.",
            headers={"Retry-After": str(retry_after)},
        )
        self.rate = rate
        self.retry_after = retry_after

    def body(self, *, path: str, method: str) -> dict[str, Any]:
        return {
            "code": "RATE_LIMIT_EXCEEDED",
            "message": self.message,
            "retryAfter": self.retry_after,
            "limit": {"points": self.rate.points, "windowSec": self.rate.window},
        }
