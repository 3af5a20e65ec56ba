"""Telling a database outage (the server or the network to it is away) from a real error.

During an outage every request and every background poll fails the same way; the cause's one
line says it all, so these are logged as warnings without a traceback. Errors of the same
exception types that are not about the connection stay errors, with their traceback.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc

UNAVAILABLE_CAUSES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
)


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The driver's error when `exc` means the database cannot be reached, else None.

    Through SQLAlchemy, `exc.orig` is the dialect's DB-API error, whose `__cause__` is the
    driver's own (asyncpg's "the database system is starting up" arrives that way, and the
    connection is not marked invalidated); the hot reads on asyncpg raise its errors bare.
    """
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc if isinstance(exc, UNAVAILABLE_CAUSES) else None
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        if isinstance(candidate, UNAVAILABLE_CAUSES):
            return candidate
    return exc.orig if exc.connection_invalidated else None


def describe(cause: BaseException) -> str:
    """`ConnectionRefusedError: [Errno 111] Connection refused`."""
    return f"{type(cause).__name__}: {cause}"


def log_failure(log: Any, exc: BaseException, event: str, **context: object) -> None:
    """An outage as one warning line (`<event>: database unavailable` with the cause); any
    other failure as an error with its traceback."""
    cause = unavailable_cause(exc)
    if cause is None:
        log.error(event, exc_info=exc, **context)
    else:
        log.warning(f"{event}: database unavailable", error=describe(cause), **context)
