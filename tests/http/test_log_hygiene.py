"""What a log line must never hold: API keys, contacts' data (see also test_observability)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from contacts_api.storage.engine import Database
from tests.factories import new_account
from tests.servers import serve

LEAD = {
    "email": "leak.person@example.org",
    "phoneNumber": "+15559998888",
    "ipAddress": "198.51.100.23",
}

# Every insert into `contact` fails inside the database, as a full disk would fail it.
FAILING_INSERTS = {
    "sqlite": (
        ["CREATE TRIGGER fail_insert BEFORE INSERT ON contact BEGIN"
         " SELECT RAISE(ABORT, 'disk is full'); END"],
        ["DROP TRIGGER fail_insert"],
    ),
    "postgresql": (
        ["CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql"
         " AS $$ BEGIN RAISE EXCEPTION 'disk is full'; END $$",
         "CREATE TRIGGER fail_insert BEFORE INSERT ON contact"
         " FOR EACH ROW EXECUTE FUNCTION fail_insert()"],
        ["DROP TRIGGER fail_insert ON contact", "DROP FUNCTION fail_insert()"],
    ),
}  # fmt: skip


async def run_sql(db: Database, statements: list[str]) -> None:
    async with db.transaction() as conn:
        for statement in statements:
            await conn.exec_driver_sql(statement)


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_a_failed_write_is_logged_without_the_key_or_the_contact(
    database_url: str, db: Database, tmp_path: Path, log_format: str
) -> None:
    """The error and its traceback are logged; the statement's parameters (the contact) and
    the console traceback's local variables (the request's Authorization header) are not."""
    account = await new_account(db)
    create, drop = FAILING_INSERTS["sqlite" if db.is_sqlite else "postgresql"]
    await run_sql(db, create)
    log = tmp_path / "server.log"
    env = {"CONTACTS_API_DATABASE_URL": database_url, "CONTACTS_API_LOG_FORMAT": log_format}
    try:
        with serve(env, log=log) as base:
            response = httpx.post(
                f"{base}/v1/contacts", json=LEAD, headers=account.headers, timeout=30
            )
    finally:
        await run_sql(db, drop)
    assert response.status_code == 500, response.text
    text = log.read_text()
    assert "disk is full" in text
    assert "Traceback" in text
    for secret in (account.key, *LEAD.values()):
        assert secret not in text
    assert "\x1b[" not in text  # a file, not a terminal: no colour codes, console or not
