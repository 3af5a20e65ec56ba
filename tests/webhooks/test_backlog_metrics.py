"""/metrics shows the webhook outbox's backlog (webhooks/backlog.py): a receiver that fails now
and then holds its endpoint's younger messages back, and the queue grew by minutes unseen."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings
from tests.factories import new_account
from tests.http.test_observability import metric_value
from tests.webhooks.conftest import Client, create_contact, subscribe
from tests.webhooks.receiver import Receiver

PENDING = "contacts_api_webhook_messages_pending"
OLDEST = "contacts_api_webhook_oldest_pending_seconds"


async def test_metrics_show_the_pending_messages_and_the_oldest_ones_age(
    client: Client, db: Database, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url)
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        await create_contact(client, account, email=email)
    waiting = (await client.get("/metrics")).text
    assert metric_value(waiting, PENDING) == 3
    assert 0 <= metric_value(waiting, OLDEST) < 60
    assert f"# TYPE {OLDEST} gauge" in waiting

    assert await dispatcher.run_once() == 3
    drained = (await client.get("/metrics")).text
    assert (metric_value(drained, PENDING), metric_value(drained, OLDEST)) == (0, 0)
    assert f"{PENDING} 0.0" in drained  # said, not left out


async def test_metrics_answer_without_the_backlog_when_the_database_does_not() -> None:
    app = create_app(make_settings("postgresql://app@127.0.0.1:1/gone"))
    async with AsyncTestClient(app=app) as client:
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert "contacts_api_http_requests_total" in scrape.text
    assert PENDING not in scrape.text
