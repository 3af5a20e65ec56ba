"""Telling a database outage (the server or the network to it is away, or a SQLite file
locked by another program for longer than the server waits) from a real error.

During an outage every request and every background poll fails the same way; the cause's one
line says it all, so these are logged as warnings without a traceback. Errors of the same
exception types that are not about the connection stay errors, with their traceback.
"""

from __future__ import annotations

import sqlite3
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


# SQLAlchemy's words (engine/base.py, Connection._invalid_transaction), savepoint or not.
_DIED_IN_TRANSACTION = "Can't reconnect until invalid "


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The driver's error when `exc` means the database cannot be reached, else None.

    Through SQLAlchemy, `exc.orig` is the dialect's DB-API error, whose `__cause__` is the
    driver's own (asyncpg's "the database system is starting up" arrives that way, and the
    connection is not marked invalidated); the hot reads on asyncpg raise its errors bare.
    """
    if isinstance(exc, sqlalchemy.exc.PendingRollbackError):
        # A statement (a rollback to a savepoint, say) on a connection that died inside its
        # transaction: SQLAlchemy's own error, not the driver's. Other misuse stays a bug.
        return exc if str(exc).startswith(_DIED_IN_TRANSACTION) else None
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc if isinstance(exc, UNAVAILABLE_CAUSES) or sqlite_locked(exc) else None
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        if isinstance(candidate, UNAVAILABLE_CAUSES) or sqlite_locked(candidate):
            return candidate
    return exc.orig if exc.connection_invalidated else None


def sqlite_locked(exc: BaseException | None) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED once the server's wait ran out: another program (a backup,
    a `sqlite3` shell in a write transaction) holds the file's lock. It goes away by itself,
    so the client may retry, as during an outage."""
    code = getattr(exc, "sqlite_errorcode", 0) if isinstance(exc, sqlite3.OperationalError) else 0
    return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


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
