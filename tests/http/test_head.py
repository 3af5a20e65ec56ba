"""HEAD is answered as GET without the body on every path that serves GET (http/head_as_get.py):
the same status, headers and length, the same key check, validation and rate limit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from tests.conftest import make_settings
from tests.contacts.helpers import Client, create
from tests.factories import new_account, sqlite_file_with_account
from tests.http.test_observability import metric_value
from tests.servers import serve

# Differ between two answers by nature.
VOLATILE_HEADERS = {"x-request-id", "date", "ratelimit-remaining", "ratelimit-reset"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, rate_limit="1000/60")


def _headers(response: object) -> dict[str, str]:
    return {
        k: v
        for k, v in response.headers.items()  # type: ignore[attr-defined]
        if k.lower() not in VOLATILE_HEADERS
    }


async def test_head_answers_as_get_without_the_body(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="head@example.com")
    await client.post("/v1/webhooks", json={"url": "https://example.com/hook"})
    for path in (
        "/v1/contacts?limit=5",  # a hot route
        f"/v1/contacts/detail?contactId={contact['id']}",  # a hot route
        "/v1/events",  # a Litestar route
        "/v1/webhooks/deliveries",
        "/healthz",
        "/readyz",
    ):
        got = await client.get(path, headers=account.headers)
        head = await client.head(path, headers=account.headers)
        assert got.status_code == 200, (path, got.text)
        assert head.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-length"] == str(len(got.content)), path
        assert _headers(head) == _headers(got), path


async def test_head_is_refused_and_validated_as_get(client: Client, db: Database) -> None:
    account = await new_account(db)
    missing = await client.head("/v1/contacts")
    assert missing.status_code == 401 and missing.content == b""
    assert missing.headers["content-length"] == str(len((await client.get("/v1/contacts")).content))
    too_many = await client.head("/v1/contacts?limit=1000", headers=account.headers)
    assert too_many.status_code == 400 and too_many.content == b""
    other = await new_account(db, "other", "owner@other.test")
    foreign = await create(client, other, email="theirs@example.com")
    hidden = await client.head(
        f"/v1/contacts/detail?contactId={foreign['id']}", headers=account.headers
    )
    assert hidden.status_code == 404 and hidden.content == b""


async def test_head_spends_the_budget_of_get(database_url: str) -> None:
    from litestar.testing import AsyncTestClient

    from contacts_api.app import create_app

    db = Database(database_url)
    try:
        account = await new_account(db)
    finally:
        await db.dispose()
    app = create_app(make_settings(database_url, rate_limit="2/60"))
    async with AsyncTestClient(app=app) as client:
        assert (await client.head("/v1/events", headers=account.headers)).status_code == 200
        assert (await client.get("/v1/events", headers=account.headers)).status_code == 200
        over = await client.head("/v1/events", headers=account.headers)
        assert over.status_code == 429 and over.content == b""
        assert over.headers["retry-after"]


async def test_head_on_every_spelling_litestar_routes(client: Client, db: Database) -> None:
    """Litestar's router drops a trailing slash and collapses repeated ones; so does HEAD."""
    account = await new_account(db)
    for path in ("/healthz/", "/readyz//", "/readyz/", "/v1/contacts/", "/v1//contacts"):
        got = await client.get(path, headers=account.headers)
        head = await client.head(path, headers=account.headers)
        assert got.status_code == 200, (path, got.text)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-length"] == str(len(got.content)), path
        options = await client.options(path)
        assert options.status_code == 204, path
        assert "HEAD" in options.headers["allow"].split(", "), path
    refused = await client.head("/v1/contacts/bulk/", headers=account.headers)
    assert refused.status_code == 405 and refused.headers["allow"] == "OPTIONS, POST"


async def test_head_where_no_get_is_served_is_a_405(client: Client, db: Database) -> None:
    account = await new_account(db)
    refused = await client.head("/v1/contacts/bulk", headers=account.headers)
    assert refused.status_code == 405 and refused.content == b""
    assert refused.headers["allow"] == "OPTIONS, POST"
    assert (await client.head("/v1/nothing-here")).status_code == 404


async def test_head_is_counted_as_head(client: Client, db: Database) -> None:
    account = await new_account(db)
    counted = 'contacts_api_http_requests_total{method="HEAD",route="/v1/contacts",status="200"}'
    before = (await client.get("/metrics")).text
    await client.head("/v1/contacts", headers=account.headers)
    after = (await client.get("/metrics")).text
    assert metric_value(after, counted) - metric_value(before, counted) == 1


async def test_a_real_server_sends_no_body_for_head(tmp_path: Path) -> None:
    """Over one keep-alive connection: a body sent after HEAD's head would be read as the
    start of the next answer."""
    url, account = await sqlite_file_with_account(tmp_path / "head.db")
    with serve({"CONTACTS_API_DATABASE_URL": url}, log=tmp_path / "server.log") as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            request = (
                "{} /v1/contacts?limit=1 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {account.key}\r\n\r\n"
            )
            sock.sendall(request.format("HEAD").encode() + request.format("GET").encode())
            received = b""
            while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:80]
    length = next(
        line.split(b":")[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert rest.partition(b"\r\n\r\n")[2] == rest.partition(b"\r\n\r\n")[2][: int(length)]
    assert len(rest.partition(b"\r\n\r\n")[2]) == int(length)
