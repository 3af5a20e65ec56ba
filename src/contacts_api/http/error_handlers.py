"""Render every error as iClosed does: AppError bodies, the V1 400 shape, never a traceback."""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy.exc
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from contacts_api.errors import AppError, InternalError, ServiceUnavailable, ValidationFailed
from contacts_api.http.body import TOO_LARGE, ClientDisconnected
from contacts_api.http.observability import loggable_path
from contacts_api.storage.outage import UNAVAILABLE_CAUSES, describe, unavailable_cause

log = structlog.get_logger(__name__)
CLIENT_CLOSED_REQUEST = 499

_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
}


def _render(request: Request[Any, Any, Any], error: AppError) -> Response[Any]:
    return Response(
        content=error.body(path=request.url.path, method=request.method),
        status_code=error.status,
        headers=error.headers,
        media_type=MediaType.JSON,
    )


def as_app_error(exc: HTTPException) -> AppError:
    """A Litestar HTTP error as the AppError the API answers with."""
    if isinstance(exc, ValidationException):
        field_errors: dict[str, list[str]] = {}
        form_errors: list[str] = []
        for item in exc.extra if isinstance(exc.extra, list) else []:
            key = item.get("key") if isinstance(item, dict) else None
            message = str(item.get("message", "Invalid")) if isinstance(item, dict) else str(item)
            if key:
                field_errors.setdefault(str(key), []).append(message)
            else:
                form_errors.append(message)
        if not field_errors and not form_errors:
            form_errors.append(exc.detail)
        return ValidationFailed(form_errors, field_errors)
    message = _HTTP_MESSAGES.get(exc.status_code, exc.detail)
    if exc.status_code == 413 and not message.startswith(TOO_LARGE):
        message = TOO_LARGE  # Litestar's own 413, without our limit in its words
    error = AppError(message)
    error.status = exc.status_code
    error.headers = dict(exc.headers or {})
    return error


def handle_app_error(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    return _render(request, exc)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return handle_unexpected(request, exc)
    return _render(request, as_app_error(exc))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error(
        "unhandled error", path=loggable_path(request.url.path), method=request.method, exc_info=exc
    )
    return _render(request, InternalError())


def handle_client_disconnected(
    request: Request[Any, Any, Any], exc: ClientDisconnected
) -> Response[Any]:
    # wrk stopping mid-run, a browser tab closed: routine, and the answer reaches no one.
    # Metrics and the access line count it as 499 (nginx's "client closed request").
    log.info("client disconnected before its body arrived", path=loggable_path(request.url.path))
    error = AppError("Client closed request")
    error.status = CLIENT_CLOSED_REQUEST
    return _render(request, error)


# The database (or the network to it) is away: the client gets a clean 503 and may retry; the
# pool's pre-ping replaces dead connections once it is back (storage/outage.py).
def handle_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    cause = unavailable_cause(exc)
    if cause is None:
        return handle_unexpected(request, exc)
    # No traceback: during an outage every request lands here, and the cause says it all.
    log.warning(
        "database unavailable",
        path=loggable_path(request.url.path),
        method=request.method,
        error=describe(cause),
    )
    return _render(request, ServiceUnavailable("Service temporarily unavailable"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    AppError: handle_app_error,
    HTTPException: handle_http_exception,
    ClientDisconnected: handle_client_disconnected,
    sqlalchemy.exc.DBAPIError: handle_database_unavailable,
    sqlalchemy.exc.TimeoutError: handle_database_unavailable,
    sqlalchemy.exc.PendingRollbackError: handle_database_unavailable,  # died in a transaction
    **dict.fromkeys(UNAVAILABLE_CAUSES, handle_database_unavailable),
    sqlite3.OperationalError: handle_database_unavailable,  # a hot read's, raised bare
    Exception: handle_unexpected,
}
