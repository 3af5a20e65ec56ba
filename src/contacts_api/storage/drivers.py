"""Which driver opens a database URL, and what asyncpg is given to connect.

The plain schemes (sqlite://, postgresql://) work whatever driver is inside: the server uses
aiosqlite or asyncpg, migrations and the CLI's synchronous work sqlite3 or psycopg.

A PostgreSQL URL's query parameters are read as libpq reads them. SQLAlchemy hands a URL's
query to asyncpg as keyword arguments, which asyncpg does not take for libpq's parameters:
`?sslmode=require`, as managed PostgreSQL URLs carry, failed every connection (`TypeError:
connect() got an unexpected keyword argument 'sslmode'`) after the migrations, which psycopg
runs, had passed. asyncpg reads libpq's parameters from a DSN, so the query goes there;
`connect_timeout`, which its DSN would send on to the server as a setting, becomes its
`timeout`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, make_url

# asyncpg waits 60 s for a server that accepts the connection and says nothing (a port that
# is not PostgreSQL's), and the CLI said nothing meanwhile; a PostgreSQL answers at once.
CONNECT_TIMEOUT_SECONDS = 10.0


def without_query(url: URL) -> URL:
    """The URL SQLAlchemy is given: what `connect_arguments` passes on is left out."""
    return url.set(query={})


def connect_arguments(url: str) -> dict[str, Any]:
    """asyncpg's connect arguments besides the host, port, user, password and database."""
    parsed = make_url(url)
    query = dict(parsed.query)
    timeout = query.pop("connect_timeout", None)
    arguments: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_SECONDS}
    if isinstance(timeout, str):  # a whole number (settings.url_problem); 0 waits for ever
        arguments["timeout"] = float(timeout) or None
    if query:
        dsn = parsed.set(drivername="postgresql", query=query)
        arguments["dsn"] = dsn.render_as_string(hide_password=False)
    return arguments


def pool_arguments(url: str) -> dict[str, Any]:
    """asyncpg.create_pool's connect arguments for the whole URL."""
    dsn = without_query(make_url(url).set(drivername="postgresql"))
    return {"dsn": dsn.render_as_string(hide_password=False), **connect_arguments(url)}


def async_url(url: str) -> URL:
    """The plain scheme works whatever driver is inside: pick the async driver we ship."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":  # its query: see connect_arguments
        return without_query(parsed.set(drivername="postgresql+asyncpg"))
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def sync_url(url: str) -> URL:
    """The synchronous driver, used by Alembic migrations and the CLI."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":  # libpq waits for ever for a server that says nothing
        timeout = {"connect_timeout": str(int(CONNECT_TIMEOUT_SECONDS))}
        return parsed.set(drivername="postgresql+psycopg").update_query_dict(
            {**timeout, **parsed.query}
        )
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
