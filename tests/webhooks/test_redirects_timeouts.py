"""A delivery follows no redirect and gives up after the configured timeout: both are retried."""

from __future__ import annotations

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings
from tests.factories import new_account
from tests.webhooks.conftest import Client, Clock, create_contact, deliveries, subscribe
from tests.webhooks.receiver import Receiver, Reply


async def test_a_redirect_is_not_followed(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    async with Receiver() as elsewhere:
        receiver.respond = lambda _r: Reply(307, headers={"Location": elsewhere.url})
        account = await new_account(db)
        await subscribe(client, account, receiver.url)
        await create_contact(client, account, email="a@example.com")
        await dispatcher.run_once()
        assert len(receiver.requests) == 1
        assert elsewhere.requests == []  # the signed body never went to the Location
    log = (await deliveries(client, account))["deliveries"]
    assert [(d["statusCode"], d["outcome"]) for d in log] == [(307, "retrying")]


async def test_a_slow_receiver_times_out_and_is_retried(
    database_url: str, client: Client, db: Database, receiver: Receiver, clock: Clock
) -> None:
    settings: Settings = make_settings(
        database_url,
        webhooks_allow_private=True,
        webhooks_timeout_seconds=0.3,
        webhooks_lease_seconds=5,
    )
    receiver.respond = lambda _r: Reply(200, delay_s=2.0)
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    await create_contact(client, account, email="slow@example.com")
    async with Dispatcher(db, settings, now=clock, name="timeout-test") as dispatcher:
        await dispatcher.run_once()
    log = (await deliveries(client, account))["deliveries"]
    assert len(log) == 1
    assert log[0]["statusCode"] is None and log[0]["outcome"] == "retrying"
    assert "Timeout" in log[0]["error"]
