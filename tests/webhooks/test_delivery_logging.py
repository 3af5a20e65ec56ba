"""A delivery's URL, which may carry a token in its query, stays out of the log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.logging import configure_logging
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.factories import new_account
from tests.webhooks.conftest import create_contact, subscribe
from tests.webhooks.receiver import Receiver


@pytest.fixture
def server_log(settings: Settings) -> Iterator[io.StringIO]:
    """The server's own logging set-up (INFO, JSON), writing here instead of stderr; undone
    afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    named = {name: logging.getLogger(name).level for name in ("httpx", "aiosqlite")}
    configure_logging(settings.model_copy(update={"log_format": "json", "log_level": "INFO"}))
    written = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(written)
    yield written
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, named_level in named.items():
        logging.getLogger(name).setLevel(named_level)


async def test_a_delivery_does_not_log_its_url(
    client: AsyncTestClient[Litestar],
    db: Database,
    receiver: Receiver,
    dispatcher: Dispatcher,
    server_log: io.StringIO,
) -> None:
    account = await new_account(db)
    await subscribe(client, account, receiver.url + "?token=SECRETQUERYTOKEN")
    await create_contact(client, account, email="jane@example.com")

    assert await dispatcher.run_once() == 1
    assert [r.path for r in receiver.requests] == ["/hook?token=SECRETQUERYTOKEN"]
    logging.getLogger("contacts_api.webhooks").info("delivered")  # the log is being read
    logged = server_log.getvalue()
    assert '"event": "delivered"' in logged
    assert "SECRETQUERYTOKEN" not in logged
