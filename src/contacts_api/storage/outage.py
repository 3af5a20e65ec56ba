"""Telling a database outage (the server or the network to it is away) from a real error.

During an outage every request and every background poll fails the same way; the cause's one
line says it all, so these are logged as warnings without a traceback. Errors of the same
exception types that are not about the connection stay errors, with their traceback.
"""

from __future__ import annotations

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
    """The driver's error when `exc` means the database cannot be reached, else None."""
    cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    if isinstance(cause, UNAVAILABLE_CAUSES) or (
        isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    ):
        return cause
    return None


def describe(cause: BaseException) -> str:
    """`ConnectionRefusedError: [Errno 111] Connection refused`."""
    return f"{type(cause).__name__}: {cause}"
