"""GET /v1/events and GET /v1/users: the key's account only."""

from __future__ import annotations

from contacts_api.storage.engine import Database
from tests.contacts.helpers import (
    Client,
    second_user,
    settings,  # noqa: F401  (fixture: no rate limit)
)
from tests.factories import new_account, new_event


async def test_events_are_listed_with_paging(client: Client, db: Database) -> None:
    account = await new_account(db)
    other = await new_account(db, "globex", "owner@globex.test")
    first = await new_event(db, account, "Product Demo", "acme/product-demo")
    second = await new_event(db, account, "Intro Call")
    await new_event(db, other, "Not yours")

    response = await client.get("/v1/events", headers=account.headers)
    paged = await client.get("/v1/events", params={"page": 1, "limit": 1}, headers=account.headers)
    invalid = await client.get("/v1/events", params={"limit": "x"}, headers=account.headers)

    assert response.status_code == 200
    events = response.json()["data"]["events"]
    assert response.json()["data"]["count"] == 2
    assert [e["id"] for e in events] == [first, second]
    assert events[0] == {
        "id": first,
        "name": "Product Demo",
        "linkPrefix": "acme/product-demo",
        "eventType": "ONE_ON_ONE",
        "createdAt": events[0]["createdAt"],
    }
    assert events[1]["linkPrefix"] is None
    assert [e["id"] for e in paged.json()["data"]["events"]] == [second]
    assert invalid.status_code == 400
    assert invalid.json()["message"]["endpoint"] == "/v1/events"


async def test_users_of_the_account(client: Client, db: Database) -> None:
    account = await new_account(db)
    await new_account(db, "globex", "owner@globex.test")
    colleague = await second_user(db, account, "colleague@acme.test")

    response = await client.get("/v1/users", headers=colleague.headers)

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "users": [
                {
                    "id": account.user_id,
                    "email": "owner@acme.test",
                    "firstName": None,
                    "lastName": None,
                },
                {
                    "id": colleague.user_id,
                    "email": "colleague@acme.test",
                    "firstName": None,
                    "lastName": None,
                },
            ]
        }
    }
    assert (await client.get("/v1/users")).status_code == 401
