"""POST /v1/contacts: the envelope, defaults, upsert, tags, events, tracking."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.storage.engine import Database
from tests.conftest import make_settings
from tests.factories import AccountFixture, count_contacts, new_account, new_event

Client = AsyncTestClient[Litestar]

SEED_BODY: dict[str, Any] = {
    "firstName": "Jane",
    "lastName": "Doe",
    "email": "jane.doe@example.com",
    "phoneNumber": "+15551234567",
    "status": "POTENTIAL",
    "tag": "lead-2024",
    "joinedTime": "2024-01-15T10:00:00.000Z",
    "eventName": "Product Demo",
    "utm": "utm_source=google&utm_medium=cpc",
    "country": "US",
    "timeZone": "America/New_York",
    "ipAddress": "192.168.1.1",
    "referrerUrl": "https://example.com/signup",
}
CONTACT_KEYS = {
    "id", "accountId", "userId", "email", "firstName", "lastName", "status", "phoneNumber",
    "previewId", "tagId", "blockedByRecaptcha", "joinedTime", "country", "timeZone",
    "ipAddress", "blockedId", "referrerUrl", "createdAt", "updatedAt", "deletedAt", "tracking",
}  # fmt: skip


async def post(client: Client, account: AccountFixture, body: Any) -> Any:
    return await client.post("/v1/contacts", json=body, headers=account.headers)


async def test_seed_example_answers_201_with_the_documented_envelope(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    event_id = await new_event(db, account, "Product Demo", "acme/product-demo")

    response = await post(client, account, SEED_BODY)

    assert response.status_code == 201
    assert list(response.json()) == ["data"]
    contact = response.json()["data"]["contact"]
    assert set(contact) == CONTACT_KEYS
    assert contact["accountId"] == account.account_id
    assert contact["userId"] == account.user_id
    assert contact["email"] == "jane.doe@example.com"
    assert contact["status"] == "POTENTIAL"
    assert contact["joinedTime"] == "2024-01-15T10:00:00.000Z"
    assert contact["blockedByRecaptcha"] is False
    assert contact["deletedAt"] is None and contact["blockedId"] is None
    assert isinstance(contact["tagId"], int)
    assert contact["previewId"].startswith("contact_") and len(contact["previewId"]) == 20
    assert contact["createdAt"].endswith("Z") and len(contact["createdAt"]) == 24
    assert contact["tracking"] == {
        "utm_source": "google",
        "first_utm_source": "google",
        "utm_medium": "cpc",
        "first_utm_medium": "cpc",
    }
    assert event_id > 0


async def test_defaults_for_a_minimal_create(client: Client, db: Database) -> None:
    account = await new_account(db)
    response = await post(client, account, {"phoneNumber": "+15550001111"})
    assert response.status_code == 201
    contact = response.json()["data"]["contact"]
    assert contact["status"] == "POTENTIAL"
    assert contact["joinedTime"] == contact["createdAt"]
    assert contact["tracking"] == {}
    assert contact["email"] is None and contact["tagId"] is None


async def test_null_and_empty_string_mean_not_given(client: Client, db: Database) -> None:
    account = await new_account(db)
    body = {"email": "a@example.com", "firstName": None, "lastName": "", "status": "", "tag": None}
    response = await post(client, account, body)
    assert response.status_code == 201
    contact = response.json()["data"]["contact"]
    assert contact["firstName"] is None and contact["lastName"] is None
    assert contact["status"] == "POTENTIAL" and contact["tagId"] is None


async def test_unknown_keys_never_assign(client: Client, db: Database) -> None:
    account = await new_account(db)
    other = await new_account(db, "other", "o@other.test")
    body = {
        "email": "x@example.com",
        "id": 999,
        "accountId": other.account_id,
        "userId": other.user_id,
        "createdAt": "2000-01-01T00:00:00.000Z",
        "tagId": 77,
        "blockedByRecaptcha": True,
        "previewId": "contact_hijackhijack",
    }
    response = await post(client, account, body)
    assert response.status_code == 201
    contact = response.json()["data"]["contact"]
    assert contact["id"] != 999
    assert contact["accountId"] == account.account_id
    assert contact["userId"] == account.user_id
    assert contact["createdAt"] != "2000-01-01T00:00:00.000Z"
    assert contact["tagId"] is None and contact["blockedByRecaptcha"] is False
    assert contact["previewId"] != "contact_hijackhijack"
    assert await count_contacts(db, other.account_id) == 0


async def test_duplicate_email_upserts_case_insensitively(client: Client, db: Database) -> None:
    account = await new_account(db)
    first = await post(client, account, {"email": "Jane@Example.com", "firstName": "Jane"})
    second = await post(
        client, account, {"email": "jane@example.com", "lastName": "Doe", "status": "QUALIFIED"}
    )
    assert first.status_code == 201
    assert second.status_code == 200
    before, after = first.json()["data"]["contact"], second.json()["data"]["contact"]
    assert after["id"] == before["id"]
    assert after["firstName"] == "Jane"  # kept: not given the second time
    assert after["lastName"] == "Doe" and after["status"] == "QUALIFIED"
    assert after["createdAt"] == before["createdAt"]
    assert await count_contacts(db) == 1


async def test_upsert_that_changes_nothing_keeps_updated_at(client: Client, db: Database) -> None:
    account = await new_account(db)
    first = await post(client, account, {"email": "same@example.com", "firstName": "A"})
    await asyncio.sleep(0.01)
    again = await post(client, account, {"email": "same@example.com", "firstName": "A"})
    assert again.status_code == 200
    assert (
        again.json()["data"]["contact"]["updatedAt"] == first.json()["data"]["contact"]["updatedAt"]
    )


async def test_same_email_in_another_account_is_another_contact(
    client: Client, db: Database
) -> None:
    one = await new_account(db)
    two = await new_account(db, "other", "o@other.test")
    assert (await post(client, one, {"email": "shared@example.com"})).status_code == 201
    assert (await post(client, two, {"email": "shared@example.com"})).status_code == 201
    assert await count_contacts(db, one.account_id) == 1
    assert await count_contacts(db, two.account_id) == 1


async def test_thirty_concurrent_creates_of_one_email_leave_one_contact(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    bodies = [{"email": "race@example.com", "firstName": f"N{i}"} for i in range(30)]
    responses = await asyncio.gather(*(post(client, account, b) for b in bodies))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(200) == 29, codes
    assert len({r.json()["data"]["contact"]["id"] for r in responses}) == 1
    assert await count_contacts(db) == 1


async def test_reject_mode_answers_409(database_url: str, db: Database) -> None:
    app = create_app(make_settings(database_url, duplicate_email="reject"))
    async with AsyncTestClient(app=app) as client:
        account = await new_account(db)
        assert (await post(client, account, {"email": "r@example.com"})).status_code == 201
        response = await post(client, account, {"email": "R@example.com"})
        assert response.status_code == 409
        assert response.json() == {"message": "A contact with this email already exists"}
        assert await count_contacts(db) == 1


async def test_allow_mode_keeps_duplicates(database_url: str, db: Database) -> None:
    app = create_app(make_settings(database_url, duplicate_email="allow"))
    async with AsyncTestClient(app=app) as client:
        account = await new_account(db)
        for _ in range(2):
            assert (await post(client, account, {"email": "a@example.com"})).status_code == 201
        assert await count_contacts(db) == 2


async def test_tag_is_found_or_created_per_account(client: Client, db: Database) -> None:
    account = await new_account(db)
    other = await new_account(db, "other", "o@other.test")
    a = await post(client, account, {"email": "a@example.com", "tag": "vip"})
    b = await post(client, account, {"email": "b@example.com", "tag": "vip"})
    c = await post(client, account, {"email": "c@example.com", "tag": "VIP"})
    d = await post(client, other, {"email": "d@example.com", "tag": "vip"})
    tag = [r.json()["data"]["contact"]["tagId"] for r in (a, b, c, d)]
    assert tag[0] == tag[1]
    assert tag[2] != tag[0]  # exact name: a different case is a different tag
    assert tag[3] not in (tag[0], tag[2])


async def event_of(db: Database, contact_id: int) -> int | None:
    import sqlalchemy as sa

    from contacts_api.storage.models import contact_table

    async with db.read() as conn:
        query = sa.select(contact_table.c.event_id).where(contact_table.c.id == contact_id)
        return (await conn.execute(query)).scalar_one()  # type: ignore[no-any-return]


async def test_event_selector_precedence(client: Client, db: Database) -> None:
    account = await new_account(db)
    demo = await new_event(db, account, "Product Demo", "acme/product-demo")
    call = await new_event(db, account, "Intro Call", "acme/intro")
    by_name = await post(client, account, {"email": "a@example.com", "eventName": "Intro Call"})
    by_prefix = await post(
        client,
        account,
        {"email": "b@example.com", "eventName": "Intro Call", "linkPrefix": "acme/product-demo"},
    )
    by_id = await post(
        client,
        account,
        {"email": "c@example.com", "eventId": call, "linkPrefix": "acme/product-demo"},
    )
    ids = [r.json()["data"]["contact"]["id"] for r in (by_name, by_prefix, by_id)]
    assert [await event_of(db, i) for i in ids] == [call, demo, call]


async def test_unknown_event_is_a_400_on_the_selector_used(client: Client, db: Database) -> None:
    account = await new_account(db)
    other = await new_account(db, "other", "o@other.test")
    foreign = await new_event(db, other, "Theirs", "other/theirs")
    cases = [
        ({"eventName": "Nope"}, "eventName"),
        ({"linkPrefix": "acme/nope", "eventName": "Nope"}, "linkPrefix"),
        ({"eventId": foreign}, "eventId"),  # another account's event is unknown here
    ]
    for selector, field in cases:
        response = await post(client, account, {"email": "e@example.com", "tag": "t", **selector})
        assert response.status_code == 400, selector
        details = response.json()["message"]["details"]
        assert details["fieldErrors"] == {field: ["Event not found"]}
    assert await count_contacts(db) == 0


async def test_tracking_keeps_first_touch_and_moves_last_touch(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    await post(
        client,
        account,
        {"email": "t@example.com", "utm": "utm_source=google&utm_medium=cpc&gclid=abc"},
    )
    response = await post(
        client,
        account,
        {
            "email": "t@example.com",
            "utm": "utm_source=newsletter&utm_campaign=black+friday&gclid=def&ref=x",
        },
    )
    assert response.status_code == 200
    assert response.json()["data"]["contact"]["tracking"] == {
        "utm_source": "newsletter",
        "first_utm_source": "google",
        "utm_medium": "cpc",
        "first_utm_medium": "cpc",
        "utmKey_1": "gclid",
        "utmValue_1": "def",
        "utm_campaign": "black friday",
        "first_utm_campaign": "black friday",
        "utmKey_2": "ref",
        "utmValue_2": "x",
    }


async def test_tracking_keeps_at_most_fifty_other_keys(client: Client, db: Database) -> None:
    """Each touch may bring new keys; a contact's tracking must not grow without end."""
    account = await new_account(db)
    for touch in range(3):  # 3 x 30 new keys
        utm = "&".join(f"k{touch}_{n}=v" for n in range(30))
        await post(client, account, {"email": "t@example.com", "utm": utm})
    response = await post(
        client, account, {"email": "t@example.com", "utm": "utm_source=x&k0_0=new&k2_29=no"}
    )
    tracking = response.json()["data"]["contact"]["tracking"]
    names = [value for key, value in tracking.items() if key.startswith("utmKey_")]
    assert len(names) == 50  # the first 50 keys seen; later new ones are dropped
    assert names[-1] == "k1_19" and "k2_0" not in names
    assert tracking["utmKey_1"] == "k0_0" and tracking["utmValue_1"] == "new"  # still updated
    assert tracking["utm_source"] == "x"  # the standard keys are not counted


async def test_referrer_url_utm_parameters_count(client: Client, db: Database) -> None:
    account = await new_account(db)
    response = await post(
        client,
        account,
        {
            "email": "r@example.com",
            "referrerUrl": "https://lp.example.com/?utm_source=fb&utm_term=shoes&fbclid=1",
            "utm": "utm_term=boots",
        },
    )
    tracking = response.json()["data"]["contact"]["tracking"]
    assert tracking["utm_source"] == "fb"
    assert tracking["utm_term"] == "boots"  # the explicit utm wins over the referrer
    assert tracking["first_utm_term"] == "boots"  # for the first touch too: one touch, one value
    assert "fbclid" not in tracking.values()  # only utm_* parameters of the referrer count


async def test_what_a_create_answers_is_what_was_stored(client: Client, db: Database) -> None:
    """A create answers from the values it wrote (it never reads them back), so each one must
    survive the trip into the database: detail, read from the stored row, shows the same
    contact, field for field (milliseconds, tracking, every optional field, a missing email)."""
    account = await new_account(db)
    await new_event(db, account, "Product Demo", "acme/product-demo")
    utm = "utm_source=a%20b&utm_medium=cpc"
    body = {**SEED_BODY, "joinedTime": "2024-01-15T10:00:00.250Z", "utm": utm}
    created = []
    for n, extra in enumerate([{}, {"email": None, "phoneNumber": "+15550002222"}, {"tag": "x"}]):
        data = {**body, "email": f"lead{n}@example.com", **extra}
        response = await post(client, account, data)
        assert response.status_code == 201, response.text
        created.append(response.json()["data"]["contact"])
    assert created[0]["joinedTime"] == "2024-01-15T10:00:00.250Z"
    for contact in created:
        response = await client.get(
            "/v1/contacts/detail", params={"contactId": contact["id"]}, headers=account.headers
        )
        assert response.status_code == 200
        stored = response.json()["data"]
        assert {key: stored[key] for key in CONTACT_KEYS} == contact
        # In the same order too (PostgreSQL's JSONB would sort a stored object's keys).
        assert (
            list(stored["tracking"])
            == list(contact["tracking"])
            == [
                "utm_source",
                "first_utm_source",
                "utm_medium",
                "first_utm_medium",
            ]
        )
