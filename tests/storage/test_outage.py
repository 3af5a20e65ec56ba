"""What counts as a database outage (a clean 503 and a one-line warning) and what does not."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy.exc
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    AsyncAdapt_asyncpg_dbapi,
)

from contacts_api.storage.engine import Database
from contacts_api.storage.outage import unavailable_cause


def through_sqlalchemy(error: Exception) -> sqlalchemy.exc.DBAPIError:
    """`error` as SQLAlchemy hands it to us: the dialect translates asyncpg's error into its
    DB-API class (raised from the original), then wraps that in a DBAPIError."""
    dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, error)
    except Exception as translated:
        return sqlalchemy.exc.DBAPIError.instance(
            "SELECT 1", None, translated, dbapi.Error, connection_invalidated=False
        )
    raise AssertionError("not translated")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    ],
)
def test_a_postgresql_restart_seen_through_sqlalchemy_is_an_outage(error: Exception) -> None:
    wrapped = through_sqlalchemy(error)
    assert not wrapped.connection_invalidated
    assert unavailable_cause(wrapped) is error


def test_a_constraint_violation_is_not_an_outage() -> None:
    wrapped = through_sqlalchemy(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert unavailable_cause(wrapped) is None


def test_bare_errors() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    assert unavailable_cause(refused) is refused  # the hot reads' asyncpg pool raises it bare
    assert unavailable_cause(RuntimeError("a bug")) is None
    # A wrapped cause counts only through SQLAlchemy's DB-API wrapping.
    try:
        raise RuntimeError("a bug") from refused
    except RuntimeError as bug:
        assert unavailable_cause(bug) is None


async def test_a_statement_after_the_connection_died_in_a_transaction_is_an_outage(
    database_url: str, db: Database
) -> None:
    """SQLAlchemy answers any statement on a connection invalidated inside a transaction with
    PendingRollbackError ("Can't reconnect until invalid transaction is rolled back"), no
    DB-API error: it was a 500 with a traceback wherever a rollback or a savepoint followed."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's backends; SQLite's file has no connection to lose")
    async with db.transaction() as conn:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as died:
            await conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        assert unavailable_cause(died.value) is not None
        with pytest.raises(sqlalchemy.exc.PendingRollbackError) as after:
            await conn.exec_driver_sql("SELECT 1")
        assert unavailable_cause(after.value) is after.value
        await conn.rollback()
    with pytest.raises(sqlalchemy.exc.PendingRollbackError) as misuse:
        raise sqlalchemy.exc.PendingRollbackError("This transaction is inactive")
    assert unavailable_cause(misuse.value) is None  # other misuse stays a bug
