"""schemathesis against the real server and its own /openapi.json, with a valid key.

The server runs as it does in production (uvicorn; SQLite, and PostgreSQL when configured) on a free
loopback port; schemathesis generates requests for every documented operation and checks
that no answer is a server error or breaks the documented statuses, types and schemas.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import service as contacts
from contacts_api.contacts.schemas import ContactCreate
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
from tests.factories import new_account, new_event
from tests.servers import free_port

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = os.environ.get("CONTACTS_API_SCHEMATHESIS_EXAMPLES", "30")
SEED = os.environ.get("CONTACTS_API_SCHEMATHESIS_SEED", "1")


async def seed(url: str) -> str:
    """An account with an event and a few contacts to find; returns its key."""
    db = Database(url)
    try:
        account = await new_account(db)
        event_id = await new_event(db, account, "Product Demo", "acme/product-demo")
        async with db.transaction() as conn:
            for i in range(1, 6):  # ids 1-5: small generated ids find a contact
                await contacts.create_contact(
                    conn,
                    Principal(account.account_id, account.user_id, 0),
                    ContactCreate(email=f"seed{i}@example.com", eventId=event_id, tag="seed"),
                    duplicate_email="upsert",
                    now=utcnow(),
                )
    finally:
        await db.dispose()
    return account.key


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of a live server on a free loopback port, on each database."""
    url = database_url
    key = asyncio.run(seed(url))
    port = free_port()
    env = {
        **os.environ,
        "CONTACTS_API_DATABASE_URL": url,
        "CONTACTS_API_RATE_LIMIT": "1000000/1",
        "CONTACTS_API_LOG_LEVEL": "CRITICAL",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "contacts_api.app:create_app_from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield base, key
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_schemathesis_finds_no_server_error_or_schema_violation(
    server: tuple[str, str], tmp_path: Path
) -> None:
    base, key = server
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is a dev dependency: make install"
    command = [cli, "run", f"{base}/openapi.json", "--header", f"Authorization: Bearer {key}"]
    command += ["--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--seed", SEED]
    command += ["--workers", "1", "--request-timeout", "10", "--no-color"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False
    )
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
