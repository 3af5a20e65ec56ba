"""Detail, update (PUT) and soft delete of contacts."""

from __future__ import annotations

import asyncio
from typing import Any

from contacts_api.accounts.schemas import Principal
from contacts_api.app import create_app
from contacts_api.contacts import manage_service
from contacts_api.contacts.manage_schemas import ContactUpdate
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
from tests.conftest import make_settings
from tests.contacts.helpers import (
    Client,
    create,
    list_contacts,
    settings,  # noqa: F401  (fixture: no rate limit)
    stored_contact,
)
from tests.contacts.test_create import CONTACT_KEYS, SEED_BODY
from tests.factories import AccountFixture, count_contacts, new_account, new_event

EXTENDED_KEYS = CONTACT_KEYS | {"secondary_email", "secondary_phoneNumber"}
NO_EVENT_SEED = {k: v for k, v in SEED_BODY.items() if k != "eventName"}


async def detail(client: Client, account: AccountFixture, contact_id: Any) -> Any:
    return await client.get(
        "/v1/contacts/detail", params={"contactId": contact_id}, headers=account.headers
    )


async def put(client: Client, account: AccountFixture, body: Any) -> Any:
    return await client.put("/v1/contacts", json=body, headers=account.headers)


async def test_detail_has_secondary_fields_event_and_tag_name(client: Client, db: Database) -> None:
    account = await new_account(db)
    event_id = await new_event(db, account, "Product Demo", "acme/product-demo")
    contact = await create(client, account, **SEED_BODY)

    response = await detail(client, account, contact["id"])

    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == EXTENDED_KEYS | {"event", "tag"}
    assert {k: data[k] for k in CONTACT_KEYS} == contact
    assert data["secondary_email"] is None and data["secondary_phoneNumber"] is None
    assert data["event"] == {
        "id": event_id,
        "name": "Product Demo",
        "linkPrefix": "acme/product-demo",
        "eventType": "ONE_ON_ONE",
    }
    assert data["tag"] == "lead-2024"


async def test_detail_without_event_or_tag(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test")
    data = (await detail(client, account, contact["id"])).json()["data"]
    assert data["event"] is None and data["tag"] is None


async def test_detail_errors(client: Client, db: Database) -> None:
    account = await new_account(db)
    missing = await client.get("/v1/contacts/detail", headers=account.headers)
    assert missing.status_code == 400
    assert missing.json()["message"] == {
        "status": 400,
        "details": {"formErrors": [], "fieldErrors": {"contactId": ["Required"]}},
        "endpoint": "/v1/contacts/detail",
        "method": "GET",
    }
    bad = await detail(client, account, "abc")
    assert bad.json()["message"]["details"]["fieldErrors"] == {
        "contactId": ["Expected number, received nan"]
    }
    unknown = await detail(client, account, 12345)
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Contact not found"}


async def test_update_changes_only_given_fields(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, **NO_EVENT_SEED)

    response = await put(
        client,
        account,
        {
            "id": contact["id"],
            "firstName": "Janet",
            "secondary_email": "janet@work.test",
            "secondary_phoneNumber": "+15550002222",
            "status": "QUALIFIED",
            "lastName": None,  # null means "not given"
            "accountId": 999,  # never assignable
        },
    )

    assert response.status_code == 200
    updated = response.json()["data"]["contact"]
    assert set(updated) == EXTENDED_KEYS
    assert updated["firstName"] == "Janet"
    assert updated["lastName"] == "Doe"
    assert updated["status"] == "QUALIFIED"
    assert updated["secondary_email"] == "janet@work.test"
    assert updated["secondary_phoneNumber"] == "+15550002222"
    assert updated["accountId"] == account.account_id
    assert updated["updatedAt"] >= contact["updatedAt"]
    unchanged = {"email", "phoneNumber", "tagId", "joinedTime", "country", "createdAt"}
    assert {k: updated[k] for k in unchanged} == {k: contact[k] for k in unchanged}
    again = (await detail(client, account, contact["id"])).json()["data"]
    assert {k: again[k] for k in EXTENDED_KEYS} == updated


async def test_update_that_changes_nothing_keeps_updated_at(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test", firstName="Ann")
    await asyncio.sleep(0.005)
    response = await put(client, account, {"id": contact["id"], "firstName": "Ann"})
    assert response.status_code == 200
    assert response.json()["data"]["contact"]["updatedAt"] == contact["updatedAt"]


async def test_update_reports_changed_wire_field_names(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test", firstName="Ann")
    principal = Principal(account.account_id, account.user_id, 0)
    data = ContactUpdate(
        id=contact["id"],
        firstName="Ann",
        lastName="Lee",
        secondary_phoneNumber="+1555",
        tag="vip",
        utm="utm_source=x",
    )
    async with db.transaction() as conn:
        outcome = await manage_service.update_contact(
            conn, principal, data, duplicate_email="upsert", now=utcnow()
        )
    assert set(outcome.changed) == {"lastName", "secondary_phoneNumber", "tagId", "tracking"}


async def test_update_uses_create_rules_and_requires_id(client: Client, db: Database) -> None:
    account = await new_account(db)
    response = await put(
        client,
        account,
        {
            "secondary_email": "not-an-email",
            "secondary_phoneNumber": "12-34",
            "email": "x@@y",
            "status": "BOOKED",
            "firstName": "x" * 26,
            "referrerUrl": "no scheme",
            "lastName": "nul\x00",
        },
    )
    assert response.status_code == 400
    body = response.json()["message"]
    assert body["method"] == "PUT" and body["endpoint"] == "/v1/contacts"
    assert body["details"]["fieldErrors"] == {
        "id": ["Required"],
        "firstName": ["String must contain at most 25 character(s)"],
        "lastName": ["String must not contain NUL characters"],
        "email": ["Invalid email format"],
        "secondary_email": ["Invalid email format"],
        "secondary_phoneNumber": ["Invalid phone number format"],
        "status": [
            "Invalid enum value. Expected 'POTENTIAL' | 'QUALIFIED' | 'DISQUALIFIED', "
            "received 'BOOKED'"
        ],
        "referrerUrl": ["Invalid url"],
    }
    string_id = await put(client, account, {"id": "5"})
    assert string_id.json()["message"]["details"]["fieldErrors"] == {
        "id": ["Expected number, received string"]
    }
    not_json = await client.put(
        "/v1/contacts", content=b"{", headers={**account.headers, "content-type": "text/plain"}
    )
    assert not_json.status_code == 415


async def test_update_tag_and_tracking_follow_create_rules(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="a@x.test", utm="utm_source=google")
    response = await put(
        client,
        account,
        {"id": contact["id"], "tag": "vip", "utm": "utm_source=bing&ref=partner"},
    )
    updated = response.json()["data"]["contact"]
    assert updated["tracking"] == {
        "utm_source": "bing",
        "first_utm_source": "google",
        "utmKey_1": "ref",
        "utmValue_1": "partner",
    }
    same_tag = await create(client, account, email="b@x.test", tag="vip")
    assert updated["tagId"] == same_tag["tagId"] is not None


async def test_update_of_unknown_contact_is_404(client: Client, db: Database) -> None:
    account = await new_account(db)
    response = await put(client, account, {"id": 4242, "firstName": "X"})
    assert response.status_code == 404
    assert response.json() == {"message": "Contact not found"}


async def test_email_change_to_another_contacts_email_is_409(client: Client, db: Database) -> None:
    account = await new_account(db)
    await create(client, account, email="taken@x.test")
    mover = await create(client, account, email="mover@x.test")

    clash = await put(client, account, {"id": mover["id"], "email": "TAKEN@x.test"})
    own_case = await put(client, account, {"id": mover["id"], "email": "Mover@X.test"})

    assert clash.status_code == 409
    assert clash.json() == {"message": "A contact with this email already exists"}
    assert own_case.status_code == 200
    assert own_case.json()["data"]["contact"]["email"] == "Mover@X.test"
    # The new email now matches on create (upsert), the old one is free.
    upsert = await client.post(
        "/v1/contacts", json={"email": "mover@x.test"}, headers=account.headers
    )
    assert upsert.status_code == 200
    assert upsert.json()["data"]["contact"]["id"] == mover["id"]


async def test_concurrent_email_changes_to_one_address_leave_one_holder(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    movers = [await create(client, account, email=f"m{i}@x.test") for i in range(6)]
    responses = await asyncio.gather(
        *(put(client, account, {"id": m["id"], "email": "prize@x.test"}) for m in movers)
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    holders = await list_contacts(client, account, search="prize@")
    assert holders.json()["data"]["count"] == 1


async def test_email_change_is_free_in_allow_mode(database_url: str, db: Database) -> None:
    from litestar.testing import AsyncTestClient

    app = create_app(make_settings(database_url, duplicate_email="allow"))
    async with AsyncTestClient(app=app) as client:
        account = await new_account(db)
        await create(client, account, email="same@x.test")
        other = await create(client, account, email="other@x.test")
        response = await put(client, account, {"id": other["id"], "email": "same@x.test"})
        assert response.status_code == 200
    assert (await stored_contact(db, other["id"])).email_key is None


async def test_delete_soft_deletes_and_hides_everywhere(client: Client, db: Database) -> None:
    account = await new_account(db)
    contact = await create(client, account, email="gone@x.test")

    response = await client.delete(
        "/v1/contacts", params={"id": contact["id"]}, headers=account.headers
    )

    assert response.status_code == 200
    deleted = response.json()["data"]["contact"]
    assert deleted["id"] == contact["id"] and deleted["deletedAt"] is not None
    assert (await stored_contact(db, contact["id"])).deleted_at is not None
    assert (await detail(client, account, contact["id"])).status_code == 404
    assert (await put(client, account, {"id": contact["id"], "firstName": "X"})).status_code == 404
    again = await client.delete(
        "/v1/contacts", params={"id": contact["id"]}, headers=account.headers
    )
    assert again.status_code == 404
    notes = await client.get(
        "/v1/contacts/notes", params={"contactId": contact["id"]}, headers=account.headers
    )
    assert notes.status_code == 404
    assert (await list_contacts(client, account)).json()["data"]["count"] == 0
    # Its email is free: a create with it is a new contact, not an upsert of the deleted one.
    fresh = await client.post(
        "/v1/contacts", json={"email": "gone@x.test"}, headers=account.headers
    )
    assert fresh.status_code == 201
    assert fresh.json()["data"]["contact"]["id"] != contact["id"]
    assert await count_contacts(db, account.account_id) == 2


async def test_email_of_a_deleted_contact_can_be_taken_by_update(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    old = await create(client, account, email="old@x.test")
    other = await create(client, account, email="other@x.test")
    await client.delete("/v1/contacts", params={"id": old["id"]}, headers=account.headers)
    response = await put(client, account, {"id": other["id"], "email": "old@x.test"})
    assert response.status_code == 200
    assert response.json()["data"]["contact"]["email"] == "old@x.test"
    detail = await client.get(
        "/v1/contacts/detail", params={"contactId": other["id"]}, headers=account.headers
    )
    assert detail.json()["data"]["email"] == "old@x.test"


async def test_delete_query_errors(client: Client, db: Database) -> None:
    account = await new_account(db)
    missing = await client.delete("/v1/contacts", headers=account.headers)
    assert missing.status_code == 400
    assert missing.json()["message"]["method"] == "DELETE"
    assert missing.json()["message"]["details"]["fieldErrors"] == {"id": ["Required"]}
    negative = await client.delete("/v1/contacts", params={"id": "-3"}, headers=account.headers)
    assert negative.json()["message"]["details"]["fieldErrors"] == {
        "id": ["Number must be greater than or equal to 1"]
    }
