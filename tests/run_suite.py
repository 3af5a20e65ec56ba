"""`make test`: run pytest on SQLite, and on PostgreSQL when a server answers locally.

When CONTACTS_API_TEST_DATABASE_URL is not set and PostgreSQL answers on 127.0.0.1:5432
(database `test`), a throwaway database is created for this run and dropped afterwards.
With CONTACTS_API_REQUIRE_SERVICES=1 (CI), an unreachable server fails the run instead of
skipping the PostgreSQL half.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys

import pytest

ADMIN_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def create_throwaway_database() -> tuple[str, str] | None:
    """(admin URL, URL of a new empty database), or None when no server answers."""
    if not port_open("127.0.0.1", 5432):
        return None
    import psycopg

    name = f"contacts_api_test_{secrets.token_hex(4)}"
    for admin in ADMIN_URLS:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error:
            continue
        return admin, admin.rsplit("/", 1)[0] + "/" + name
    return None


def drop_database(admin: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    args = sys.argv[1:]
    throwaway = None
    if not os.environ.get("CONTACTS_API_TEST_DATABASE_URL"):
        throwaway = create_throwaway_database()
        if throwaway is not None:
            os.environ["CONTACTS_API_TEST_DATABASE_URL"] = throwaway[1]
    url = os.environ.get("CONTACTS_API_TEST_DATABASE_URL")
    backends = "sqlite" + (f", postgresql ({url.rsplit('/', 1)[1]})" if url else "")
    print(f"database backends under test: {backends}", flush=True)
    try:
        return int(pytest.main(args))
    finally:
        if throwaway is not None:
            drop_database(*throwaway)


if __name__ == "__main__":
    sys.exit(main())
