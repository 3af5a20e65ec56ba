"""Webhook test fixtures: settings that let webhooks reach 127.0.0.1, a clock, a receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.models import webhook_message_table
from contacts_api.timeutil import utcnow
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings
from tests.factories import AccountFixture
from tests.webhooks.receiver import Receiver

Client = AsyncTestClient[Litestar]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The receiver lives on 127.0.0.1, so the SSRF guard must let loopback through."""
    return make_settings(database_url, webhooks_allow_private=True)


class Clock:
    """A controllable now(): tests move it forward instead of sleeping.

    It starts a minute ahead of the real clock, so rows the app writes during the test (with
    real time) are already due for it.
    """

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


@pytest.fixture
async def dispatcher(db: Database, settings: Settings, clock: Clock) -> AsyncIterator[Dispatcher]:
    async with Dispatcher(db, settings, now=clock, name="test-dispatcher") as worker:
        yield worker


async def subscribe(
    client: Client,
    account: AccountFixture,
    url: str,
    events: tuple[str, ...] = ("newContactCreated", "contactDetailChanged"),
) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks", json={"url": url, "events": list(events)}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    webhook: dict[str, Any] = response.json()["data"]["webhook"]
    return webhook


async def create_contact(client: Client, account: AccountFixture, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/contacts", json=body, headers=account.headers)
    assert response.status_code in (200, 201), response.text
    contact: dict[str, Any] = response.json()["data"]["contact"]
    return contact


async def message_statuses(db: Database) -> list[str]:
    """Status of every outbox message, oldest first."""
    query = sa.select(webhook_message_table.c.status).order_by(webhook_message_table.c.id)
    async with db.read() as conn:
        return [str(s) for s in (await conn.execute(query)).scalars()]


async def deliveries(client: Client, account: AccountFixture, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/webhooks/deliveries", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data
