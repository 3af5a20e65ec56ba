"""How a CLI command runs its database work: any failure is one line on stderr and exit 1."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy.exc
import typer
from rich.console import Console

from contacts_api.errors import UserError
from contacts_api.settings import Settings, redacted_url
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.sqlite_setup import missing_database_file

T = TypeVar("T")

# emoji=False: rich read `:-1:` in `cannot listen on 127.0.0.1:-1: ...` as an emoji code.
stderr = Console(stderr=True, emoji=False)

# A connection that could not be made, or was lost: asyncpg raises these as they come, not
# wrapped by SQLAlchemy; a host with no route is a plain OSError, not a ConnectionError.
_UNREACHABLE = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.EADDRNOTAVAIL,
    }
)


def fail(message: str) -> typer.Exit:
    stderr.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def driver_says(exc: sqlalchemy.exc.SQLAlchemyError) -> str:
    """The error's class and the driver's own first line: refused, no such database,
    authentication failed..."""
    cause = str(getattr(exc, "orig", None) or exc).strip().partition("\n")[0]
    return f"{exc.__class__.__name__}: {cause}"


def is_unreachable(exc: OSError) -> bool:
    """Whether `exc` is the database's connection failing (not a file the command writes,
    whose errors name it): a PostgreSQL socket file gone (`?host=/run/postgresql` with the
    server stopped) is an ENOENT without a name."""
    kin = (ConnectionError, socket.gaierror, TimeoutError)
    socket_gone = exc.filename is None and exc.errno in (errno.ENOENT, errno.EACCES)
    return isinstance(exc, kin) or exc.errno in _UNREACHABLE or socket_gone


def refuse_a_missing_database(database_url: str) -> None:
    missing = missing_database_file(database_url)
    if missing is not None:
        raise fail(
            f"no database at {missing}: `contacts-api db upgrade` makes one (`serve` too), or"
            " set CONTACTS_API_DATABASE_URL to the one meant"
        )


def with_database(
    work: Callable[[Database], Awaitable[T]],
    *,
    other_os_error: Callable[[OSError], str] | None = None,
) -> T:
    """Run `work` with the configured database; its errors become one line and exit 1.

    other_os_error: the message for an OSError that is not the database's connection (a
    command that writes files says which); without it, every OSError is the database's.
    """
    settings = Settings()
    refuse_a_missing_database(settings.database_url)

    async def run() -> T:
        db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except UserError as exc:
        raise fail(str(exc)) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        advice = migrate.schema_advice(settings.database_url, exc)  # `no such table`: why
        url = redacted_url(settings.database_url)  # which database: `x` does not exist...
        raise fail(advice or f"database error on {url}: {driver_says(exc)}") from None
    except OSError as exc:
        if other_os_error is not None and not is_unreachable(exc):
            raise fail(other_os_error(exc)) from None
        detail = str(exc) or "no answer in time"  # a TimeoutError says nothing itself
        raise fail(f"database unavailable: {exc.__class__.__name__}: {detail}") from None
