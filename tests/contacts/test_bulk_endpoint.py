"""POST /v1/contacts/bulk: per-item results with the rules of POST /v1/contacts, 1,000 at most."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.accounts.schemas import Principal
from contacts_api.app import create_app
from contacts_api.contacts import bulk_request as bulk_service
from contacts_api.contacts import service
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
from tests.conftest import make_settings
from tests.contacts.test_create import CONTACT_KEYS
from tests.factories import AccountFixture, count_contacts, new_account, new_event
from tests.lock_waits import until_a_writer_waits

Client = AsyncTestClient[Litestar]


async def bulk(client: Client, account: AccountFixture, body: Any) -> Any:
    return await client.post("/v1/contacts/bulk", json=body, headers=account.headers)


async def test_each_item_gets_its_own_result(client: Client, db: Database) -> None:
    account = await new_account(db)
    await new_event(db, account, "Product Demo", "acme/demo")
    existing = await client.post(
        "/v1/contacts",
        json={"email": "old@example.com", "firstName": "Old"},
        headers=account.headers,
    )
    items: list[Any] = [
        {"email": "new@example.com", "tag": "vip", "eventName": "Product Demo"},
        {"email": "OLD@example.com", "lastName": "Updated"},
        {"email": "not-an-email", "phoneNumber": "x", "status": "WON"},
        "not an object",
        {"email": "ghost@example.com", "linkPrefix": "acme/nope"},
        {"email": "twice@example.com", "utm": "utm_source=a"},
        {"email": "Twice@example.com", "utm": "utm_source=b"},
        {"phoneNumber": "+15550001111"},
        {"firstName": "no email, no phone"},
    ]

    response = await bulk(client, account, {"contacts": items})

    assert response.status_code == 200
    results = response.json()["data"]["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [201, 200, 400, 400, 400, 201, 200, 201, 400]
    assert set(results[0]["contact"]) == CONTACT_KEYS
    assert isinstance(results[0]["contact"]["tagId"], int)
    updated = results[1]["contact"]
    assert updated["id"] == existing.json()["data"]["contact"]["id"]
    assert (updated["firstName"], updated["lastName"]) == ("Old", "Updated")
    error = results[2]["error"]["message"]
    assert (error["status"], error["endpoint"], error["method"]) == (
        400,
        "/v1/contacts/bulk",
        "POST",
    )
    assert error["details"]["formErrors"] == []
    field_errors = error["details"]["fieldErrors"]
    assert set(field_errors) == {"email", "phoneNumber", "status"}
    assert field_errors["email"] == ["Invalid email format"]
    assert field_errors["phoneNumber"] == ["Invalid phone number format"]
    assert results[3]["error"]["message"]["details"]["formErrors"] == [
        "Expected object, received string"
    ]
    assert results[4]["error"]["message"]["details"]["fieldErrors"] == {
        "linkPrefix": ["Event not found"]
    }
    assert results[5]["contact"]["id"] == results[6]["contact"]["id"]
    assert results[6]["contact"]["tracking"] == {"utm_source": "b", "first_utm_source": "a"}
    assert "contact" not in results[2] and "error" not in results[0]
    assert await count_contacts(db, account.account_id) == 4


async def test_a_bare_array_is_accepted(client: Client, db: Database) -> None:
    account = await new_account(db)
    response = await bulk(client, account, [{"email": "a@example.com"}])
    assert response.status_code == 200
    assert response.json()["data"]["results"][0]["status"] == 201


async def test_at_most_1000_items(client: Client, db: Database) -> None:
    account = await new_account(db)
    items = [{"email": f"c{i}@example.com"} for i in range(1001)]
    response = await bulk(client, account, {"contacts": items})
    assert response.status_code == 400
    assert response.json() == {
        "message": {
            "status": 400,
            "details": {
                "formErrors": [],
                "fieldErrors": {"contacts": ["Array must contain at most 1000 element(s)"]},
            },
            "endpoint": "/v1/contacts/bulk",
            "method": "POST",
        }
    }
    assert await count_contacts(db) == 0

    response = await bulk(client, account, {"contacts": items[:1000]})
    assert response.status_code == 200
    assert {r["status"] for r in response.json()["data"]["results"]} == {201}
    assert await count_contacts(db) == 1000


async def test_body_shape_errors(client: Client, db: Database) -> None:
    account = await new_account(db)
    wrong = await bulk(client, account, {"contacts": {"email": "a@example.com"}})
    assert wrong.status_code == 400
    assert wrong.json()["message"]["details"]["fieldErrors"] == {
        "contacts": ["Expected array, received object"]
    }
    shapes = [({}, "Required"), ({"contacts": None}, "Expected array, received null")]
    for body, message in shapes:
        answer = await bulk(client, account, body)
        assert answer.status_code == 400
        assert answer.json()["message"]["details"]["fieldErrors"] == {"contacts": [message]}
    for scalar, received in ((b"5", "number"), (b'"x"', "string"), (b"null", "null")):
        answer = await client.post(
            "/v1/contacts/bulk",
            content=scalar,
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert answer.status_code == 400
        assert answer.json()["message"]["details"] == {
            "formErrors": [f"Expected object, received {received}"],  # not an object: API.md 2
            "fieldErrors": {},
        }
    malformed = await client.post(
        "/v1/contacts/bulk",
        content=b"[{",
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["message"]["details"]["formErrors"] == [
        "Malformed JSON in request body"
    ]
    unauthenticated = await client.post("/v1/contacts/bulk", json=[])
    assert unauthenticated.status_code == 401


async def test_reject_mode_answers_409_per_item(database_url: str, db: Database) -> None:
    app = create_app(make_settings(database_url, duplicate_email="reject"))
    async with AsyncTestClient(app=app) as client:
        account = await new_account(db)
        first = await bulk(client, account, [{"email": "r@example.com"}])
        assert first.json()["data"]["results"][0]["status"] == 201
        again = await bulk(client, account, [{"email": "R@example.com"}, {"email": "s@x.io"}])
        results = again.json()["data"]["results"]
        assert [r["status"] for r in results] == [409, 201]
        assert results[0]["error"] == {"message": "A contact with this email already exists"}
        assert await count_contacts(db) == 2


async def test_concurrent_batches_and_creates_keep_one_contact_per_email(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    emails = [f"race{i}@example.com" for i in range(40)]
    batches = [
        bulk(
            client, account, [{"email": e.upper() if n % 2 else e, "tag": f"t{n}"} for e in emails]
        )
        for n in range(4)
    ]
    singles = [
        client.post("/v1/contacts", json={"email": e}, headers=account.headers) for e in emails[:10]
    ]
    responses = await asyncio.gather(*batches, *singles)
    assert {r.status_code for r in responses} <= {200, 201}
    assert await count_contacts(db, account.account_id) == len(emails)
    created = [item["status"] for r in responses[:4] for item in r.json()["data"]["results"]] + [
        r.status_code for r in responses[4:]
    ]
    assert created.count(201) == len(emails)


async def test_a_create_committed_during_a_batch_becomes_its_match(db: Database) -> None:
    """The batch's lookup cannot see an uncommitted create; ON CONFLICT catches it on insert."""
    account = await new_account(db)
    principal = Principal(account.account_id, account.user_id, 0)
    other = db.engine.connect()
    conn_b = await other.__aenter__()
    if db.is_sqlite:
        conn_b = await conn_b.execution_options(sqlite_begin="IMMEDIATE")
    tx_b = await conn_b.begin()
    await service.create_contact(
        conn_b,
        principal,
        service.parse_contact_create({"email": "late@example.com", "firstName": "B"}),
        duplicate_email="upsert",
        now=utcnow(),
    )

    async def batch() -> Any:
        async with db.transaction() as conn:
            return await bulk_service.create_contacts(
                conn,
                principal,
                [{"email": "LATE@example.com", "lastName": "A"}, {"email": "new@example.com"}],
                duplicate_email="upsert",
                now=utcnow(),
            )

    running = asyncio.create_task(batch())
    await until_a_writer_waits(db)  # the batch, on the create (row lock or index entry)
    await tx_b.commit()
    await other.__aexit__(None, None, None)
    results = await running

    assert [r.outcome for r in results] == ["updated", "created"]
    late = results[0].contact
    assert late is not None
    assert (late.first_name, late.last_name) == ("B", "A")
    assert await count_contacts(db, account.account_id) == 2
