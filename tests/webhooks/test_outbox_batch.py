"""A batch of changes looks up the account's webhooks (and each event) once, not per change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from contacts_api.contacts.bulk import ContactChange
from contacts_api.storage.engine import Database
from contacts_api.storage.models import webhook_message_table
from contacts_api.timeutil import utcnow
from contacts_api.webhooks.outbox import record_contact_changes
from tests.factories import new_account, new_event
from tests.webhooks.conftest import Client, create_contact, subscribe


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the engine runs inside the block."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", listen)


async def test_a_batch_looks_up_webhooks_and_events_once(client: Client, db: Database) -> None:
    account = await new_account(db)
    event_id = await new_event(db, account, "Product Demo", "acme/product-demo")
    await subscribe(client, account, "http://127.0.0.1:9/hook")
    contacts = [
        await create_contact(client, account, email=f"c{i}@example.com", eventName="Product Demo")
        for i in range(5)
    ]
    changes = [ContactChange(c["id"], False, ("firstName",)) for c in contacts]

    with statements(db) as seen:
        async with db.transaction() as conn:
            assert await record_contact_changes(conn, account.account_id, changes, utcnow()) == 5
    selects = [s for s in seen if s.upper().startswith("SELECT")]
    assert len([s for s in selects if "FROM webhook_endpoint" in s]) == 1, selects
    assert len([s for s in selects if "FROM event" in s]) == 1, selects

    async with db.read() as conn:
        payloads = (
            await conn.execute(
                sa.select(webhook_message_table.c.payload).order_by(webhook_message_table.c.id)
            )
        ).scalars()
        [item] = json.loads(list(payloads)[-1])
    assert item["id"] == contacts[-1]["id"]
    assert {k: item[k] for k in contacts[-1]} == contacts[-1]
    assert item["secondary_email"] is None and item["secondary_phoneNumber"] is None
    assert item["hookType"] == "Contact updated" and item["updatedAttributes"] == ["firstName"]
    assert item["event"] == {
        "id": event_id,
        "name": "Product Demo",
        "linkPrefix": "acme/product-demo",
        "eventType": "ONE_ON_ONE",
    }
