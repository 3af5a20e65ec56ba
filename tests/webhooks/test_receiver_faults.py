"""What a receiver or its name server may do to a delivery, and what the dispatcher makes of it:
an answer with NUL bytes (a compressed body, say), and a resolver that hangs."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.webhooks import ssrf
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings
from tests.factories import new_account
from tests.webhooks.conftest import (
    Client,
    Clock,
    create_contact,
    deliveries,
    message_statuses,
    subscribe,
)
from tests.webhooks.receiver import Receiver, Reply


async def test_an_answer_with_nul_bytes_is_logged_and_the_message_delivered(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    """PostgreSQL's text holds no NUL: the attempt's row was refused, and the message sent
    again and again, holding up the endpoint's queue. The log shows U+FFFD in its place."""
    receiver.respond = lambda _r: Reply(200, body=b"ok\x00\x1f\x8b\x08\x00")
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="a@example.com")
    await create_contact(client, account, email="b@example.com")

    assert await dispatcher.run_once() == 2

    assert await message_statuses(db) == ["delivered", "delivered"]
    log = (await deliveries(client, account))["deliveries"]
    assert [d["response"] for d in log] == ["ok\ufffd\x1f\ufffd\x08\ufffd"] * 2
    # The answer is asked for uncompressed, so the log can show it as text.
    assert {r.headers.get("accept-encoding") for r in receiver.requests} == {"identity"}


async def test_a_resolver_that_hangs_counts_against_the_attempts_timeout(
    database_url: str,
    client: Client,
    db: Database,
    receiver: Receiver,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The name's lookup is part of the attempt: a hanging resolver (outside us, so faked)
    once ran past the lease, and another dispatcher sent the message a second time."""
    settings: Settings = make_settings(
        database_url,
        webhooks_allow_private=True,
        webhooks_timeout_seconds=0.3,
        webhooks_lease_seconds=5,
    )
    account = await new_account(db)
    await subscribe(client, account, receiver.url.replace("127.0.0.1", "localhost"))
    await create_contact(client, account, email="a@example.com")

    async def hanging_getaddrinfo(*_args: Any, **_kwargs: Any) -> Any:
        await asyncio.sleep(30)

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", hanging_getaddrinfo)
    async with Dispatcher(db, settings, now=clock, name="hanging-dns") as dispatcher:
        await asyncio.wait_for(dispatcher.run_once(), timeout=5)

    log = (await deliveries(client, account))["deliveries"]
    assert [(d["outcome"], d["statusCode"]) for d in log] == [("retrying", None)]
    assert "Timeout" in log[0]["error"]
    assert receiver.requests == []


async def test_a_subscription_whose_name_does_not_resolve_in_time_is_a_400(
    client: Client, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /v1/webhooks waited as long as the resolver did (15 s and more with a dead name
    server); the lookup now has a bound of its own. The faked resolver answers a public
    address, but only after the bound: the subscription is refused, not made late."""

    def slow_getaddrinfo(*_args: Any, **_kwargs: Any) -> Any:
        time.sleep(1.5)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]

    account = await new_account(db)
    monkeypatch.setattr(ssrf, "RESOLVE_SECONDS", 0.2)
    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)

    response = await client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/in", "events": ["newContactCreated"]},
        headers=account.headers,
    )

    assert response.status_code == 400, response.text
    errors = response.json()["message"]["details"]["fieldErrors"]
    assert errors == {"url": ["cannot resolve hooks.example.com"]}
