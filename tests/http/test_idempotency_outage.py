"""An Idempotency-Key request whose database goes away while it runs: the answer still goes
out (a plain-text 500 once replaced it), and the request's own error stays its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from contacts_api.http.idempotency import _run_and_store
from contacts_api.http.raw_asgi import Message
from contacts_api.idempotency import service
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
from tests.factories import new_account
from tests.postgres_cluster import Cluster, throwaway_cluster

SCOPE = {"type": "http", "method": "POST", "path": "/v1/contacts", "query_string": b""}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as running:
        migrate.upgrade(running.url)
        yield running


@pytest.fixture
async def db(cluster: Cluster) -> AsyncIterator[Database]:
    database = Database(cluster.url)
    yield database
    await database.dispose()


@pytest.fixture
async def claim(db: Database) -> service.Claim:
    """The key "k", claimed for a request of a new account, as the middleware claims it."""
    account = await new_account(db)
    claimed = await service.claim(db, account.account_id, "k", "fingerprint", utcnow())
    assert isinstance(claimed, service.Claim)
    return claimed


async def nothing_to_receive() -> Message:
    raise AssertionError("the route reads no body here")


def route(cluster: Cluster, status: int, fail: bool = False) -> Any:
    """A route that answers `status` (or raises) after the database has gone away: for a 201,
    its change committed, then the storing of the answer and the release of the key fail."""

    async def app(_scope: Any, _receive: Any, send: Any) -> None:
        cluster.stop()
        if fail:
            raise RuntimeError("the route's own failure")
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b'{"answer":1}', "more_body": False})

    return app


@pytest.mark.parametrize("status", [201, 503])
async def test_the_answer_goes_out_when_the_database_went_away(
    cluster: Cluster, db: Database, claim: service.Claim, status: int
) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await _run_and_store(route(cluster, status), SCOPE, nothing_to_receive, send, claim, db)

    assert [(m["type"], m.get("status"), m.get("body")) for m in sent] == [
        ("http.response.start", status, None),
        ("http.response.body", None, b'{"answer":1}'),
    ]


async def test_a_route_that_fails_raises_its_own_error_not_the_release_failure(
    cluster: Cluster, db: Database, claim: service.Claim
) -> None:
    async def send(_message: Message) -> None:
        raise AssertionError("nothing is sent")

    app = route(cluster, 0, fail=True)
    with pytest.raises(RuntimeError, match="the route's own failure"):
        await _run_and_store(app, SCOPE, nothing_to_receive, send, claim, db)
