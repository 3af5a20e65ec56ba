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

import os
from typing import Any

from sqlalchemy.engine import URL, make_url

# asyncpg waits 60 s for a server that accepts the connection and says nothing (a port that
# is not PostgreSQL's), psycopg 130 s, and the CLI said nothing meanwhile; a PostgreSQL
# answers at once. The URL's connect_timeout, or PGCONNECT_TIMEOUT, takes its place.
CONNECT_TIMEOUT_SECONDS = 10.0
# libpq's parameters that asyncpg neither reads nor can pass on: it sends the parameters it
# does not know to the server as settings, which refuses these (settings.url_problem does
# first). PostgreSQL's own settings (`options=-c ...`, `search_path=...`) do pass.
LIBPQ_ONLY = frozenset(
    {
        "channel_binding",
        "fallback_application_name",
        "gssdelegation",
        "gssencmode",
        "hostaddr",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "load_balance_hosts",
        "replication",
        "require_auth",
        "requirepeer",
        "requiressl",
        "sslcertmode",
        "sslcompression",
        "sslsni",
        "tcp_user_timeout",
    }
)


def connect_timeout(url: URL) -> float:
    """The URL's connect_timeout, else PGCONNECT_TIMEOUT, else CONNECT_TIMEOUT_SECONDS; 0
    (for libpq, no limit) too takes the default: a server's connection must not hang."""
    text = url.query.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT")
    try:
        seconds = float(text) if isinstance(text, str) else 0.0
    except ValueError:
        seconds = 0.0
    return seconds if seconds > 0 else CONNECT_TIMEOUT_SECONDS


def libpq_parts(url: URL) -> tuple[URL, dict[str, str]]:
    """The URL without its query, and the query as libpq reads it: `dbname` moved into the
    URL (an empty path would win over it in asyncpg's reading, for the user's database), a
    key given twice (`host=a&host=b`, hosts to try in turn) as libpq's comma list (asyncpg
    kept the last one only)."""
    query = {k: ",".join(v) if isinstance(v, tuple) else v for k, v in url.query.items()}
    dbname = query.pop("dbname", None)
    if dbname:
        url = url.set(database=dbname)
    return url.set(query={}), query


def connect_arguments(url: str) -> dict[str, Any]:
    """asyncpg's connect arguments besides the host, port, user, password and database."""
    parsed = make_url(url)
    bare, query = libpq_parts(parsed)
    query.pop("connect_timeout", None)
    arguments: dict[str, Any] = {"timeout": connect_timeout(parsed)}
    if query:
        dsn = bare.set(drivername="postgresql", query=query)
        arguments["dsn"] = dsn.render_as_string(hide_password=False)
    return arguments


def pool_arguments(url: str) -> dict[str, Any]:
    """asyncpg.create_pool's connect arguments for the whole URL."""
    bare = libpq_parts(make_url(url))[0].set(drivername="postgresql")
    return {"dsn": bare.render_as_string(hide_password=False), **connect_arguments(url)}


def async_url(url: str) -> URL:
    """The plain scheme works whatever driver is inside: pick the async driver we ship."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":  # its query: see connect_arguments
        return libpq_parts(parsed)[0].set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def sync_url(url: str) -> URL:
    """The synchronous driver, used by Alembic migrations and the CLI."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
        if "connect_timeout" in parsed.query or os.environ.get("PGCONNECT_TIMEOUT"):
            return parsed
        return parsed.update_query_dict({"connect_timeout": str(int(CONNECT_TIMEOUT_SECONDS))})
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
