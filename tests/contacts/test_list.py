"""GET /v1/contacts: filters, ordering, paging, count, and every invalid query value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from contacts_api.contacts.manage_schemas import ORDER_COLUMN, ORDER_COLUMNS, OrderColumn
from contacts_api.storage.engine import Database
from contacts_api.storage.models import CONTACT_ORDER_COLUMNS
from tests.contacts.helpers import (
    Client,
    create,
    list_contacts,
    second_user,
    set_columns,
    settings,  # noqa: F401  (fixture: no rate limit)
)
from tests.contacts.test_create import CONTACT_KEYS
from tests.factories import new_account, new_event


def ids(response: Any) -> list[int]:
    return [c["id"] for c in response.json()["data"]["contacts"]]


async def five(client: Client, db: Database) -> tuple[Any, list[int]]:
    account = await new_account(db)
    created = [(await create(client, account, email=f"p{i}@x.test"))["id"] for i in range(5)]
    return account, created


async def test_default_listing_is_newest_first_with_count(client: Client, db: Database) -> None:
    account, created = await five(client, db)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    # Two share a creation time: the id breaks the tie, newest (highest) first.
    for contact_id, minutes in zip(created, [0, 5, 5, 1, 2], strict=True):
        await set_columns(db, contact_id, created_at=base + timedelta(minutes=minutes))

    response = await list_contacts(client, account)

    assert response.status_code == 200
    assert list(response.json()) == ["data"]
    assert response.json()["data"]["count"] == 5
    assert ids(response) == [created[2], created[1], created[4], created[3], created[0]]
    assert set(response.json()["data"]["contacts"][0]) == CONTACT_KEYS


async def test_paging_edges(client: Client, db: Database) -> None:
    account, created = await five(client, db)
    newest_first = created[::-1]

    first = await list_contacts(client, account, limit=2)
    middle = await list_contacts(client, account, limit=2, page=1)
    last = await list_contacts(client, account, limit=2, page=2)
    past_end = await list_contacts(client, account, limit=2, page=3)
    far_past_end = await list_contacts(client, account, limit=100, page=10_000_000)

    assert ids(first) == newest_first[:2]
    assert ids(middle) == newest_first[2:4]
    assert ids(last) == newest_first[4:]
    assert ids(past_end) == [] and ids(far_past_end) == []
    for response in (first, middle, last, past_end, far_past_end):
        assert response.status_code == 200
        assert response.json()["data"]["count"] == 5
    assert ids(await list_contacts(client, account, limit=1)) == newest_first[:1]
    assert ids(await list_contacts(client, account, limit=100)) == newest_first


async def test_default_limit_is_20_while_count_is_every_match(client: Client, db: Database) -> None:
    account = await new_account(db)
    for i in range(21):
        await create(client, account, phoneNumber=f"+1555000{i:04d}")
    response = await list_contacts(client, account)
    assert len(ids(response)) == 20
    assert response.json()["data"]["count"] == 21
    assert len(ids(await list_contacts(client, account, page=1))) == 1


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"page": "-1"}, "page", "Number must be greater than or equal to 0"),
        ({"page": "abc"}, "page", "Expected number, received nan"),
        ({"page": "1.5"}, "page", "Expected integer, received float"),
        ({"page": "10000001"}, "page", "Number must be less than or equal to 10000000"),
        ({"limit": "0"}, "limit", "Number must be greater than or equal to 1"),
        ({"limit": "101"}, "limit", "Number must be less than or equal to 100"),
        ({"limit": "1e400"}, "limit", "Expected integer, received float"),
        ({"limit": "1_0"}, "limit", "Expected number, received nan"),
        ({"limit": "Infinity"}, "limit", "Expected integer, received float"),
        ({"page": "-0x1"}, "page", "Expected number, received nan"),  # JavaScript's NaN too
        ({"page": "infinity"}, "page", "Expected number, received nan"),
        ({"page": "\x1c1"}, "page", "Expected number, received nan"),  # space to Python only
        ({"statuses": "x" * 1001}, "statuses", "String must contain at most 1000 character(s)"),
        ({"eventIds": "1,a"}, "eventIds", "Expected a comma-separated list of event ids"),
        ({"eventIds": "1,,2"}, "eventIds", "Expected a comma-separated list of event ids"),
        ({"userId": "0"}, "userId", "Number must be greater than or equal to 1"),
        ({"userId": "2147483648"}, "userId", "Number must be less than or equal to 2147483647"),
        ({"search": "s" * 256}, "search", "String must contain at most 255 character(s)"),
        ({"search": "a\x00b"}, "search", "String must not contain NUL characters"),
        ({"timeFrom": "2024-01-15"}, "timeFrom", "Invalid datetime"),
        ({"timeTo": "2024-01-15T10:00:00+01:00"}, "timeTo", "Invalid datetime"),
        ({"timeFrom": "0000-01-01T00:00Z"}, "timeFrom", "Invalid datetime"),  # [choice] no year 0
        ({"timeTo": "0000-02-29T00:00Z"}, "timeTo", "Invalid datetime"),
        (
            {"orderBy": "up", "orderColumn": "id"},
            "orderBy",
            "Invalid enum value. Expected 'asc' | 'desc', received 'up'",
        ),
    ],
)
async def test_invalid_query_value_is_a_v1_400(
    client: Client, db: Database, params: dict[str, str], field: str, message: str
) -> None:
    account = await new_account(db)
    response = await list_contacts(client, account, **params)
    assert response.status_code == 400
    assert response.json() == {
        "message": {
            "status": 400,
            "details": {"formErrors": [], "fieldErrors": {field: [message]}},
            "endpoint": "/v1/contacts",
            "method": "GET",
        }
    }


@pytest.mark.parametrize("limit", ["0x2", "0b10", "0o2", "\u00a02", " 2\u3000", "2e0", "2."])
async def test_numbers_are_read_as_javascripts_number_reads_them(
    client: Client, db: Database, limit: str
) -> None:
    """Zod's z.coerce.number() is Number(): hex, octal and binary, and Unicode spaces around."""
    account = await new_account(db)
    for i in range(3):
        await create(client, account, phoneNumber=f"+1555000{i:04d}")
    assert len(ids(await list_contacts(client, account, limit=limit))) == 2


async def test_unknown_order_column_and_every_failing_param_are_listed(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    response = await list_contacts(
        client, account, page="x", limit="500", orderBy="asc", orderColumn="phoneNumber"
    )
    assert response.status_code == 400
    details = response.json()["message"]["details"]
    assert set(details["fieldErrors"]) == {"page", "limit", "orderColumn"}
    # The choices in API.md's order, as Zod lists an enum's (not sorted).
    assert details["fieldErrors"]["orderColumn"] == [
        "Invalid enum value. Expected 'id' | 'createdAt' | 'updatedAt' | 'joinedTime' | "
        "'firstName' | 'lastName' | 'email', received 'phoneNumber'"
    ]


@pytest.mark.parametrize("given", [{"orderBy": "asc"}, {"orderColumn": "email"}])
async def test_order_by_and_order_column_go_together(
    client: Client, db: Database, given: dict[str, str]
) -> None:
    account = await new_account(db)
    response = await list_contacts(client, account, **given)
    assert response.status_code == 400
    assert response.json()["message"]["details"] == {
        "formErrors": ["orderBy and orderColumn must be given together"],
        "fieldErrors": {},
    }


async def test_empty_values_mean_not_given(client: Client, db: Database) -> None:
    account, created = await five(client, db)
    response = await list_contacts(client, account, page="", limit="", statuses="", search="")
    assert response.status_code == 200
    assert ids(response) == created[::-1]
    spaces = await list_contacts(client, account, page=" ", limit="\u00a0")  # numbers only
    assert ids(spaces) == created[::-1]


async def test_statuses_filter(client: Client, db: Database) -> None:
    account = await new_account(db)
    potential = await create(client, account, email="a@x.test")
    qualified = await create(client, account, email="b@x.test", status="QUALIFIED")
    disqualified = await create(client, account, email="c@x.test", status="DISQUALIFIED")
    await set_columns(db, potential["id"], status="BOOKED")  # stored statuses are free strings

    one = await list_contacts(client, account, statuses="QUALIFIED")
    two = await list_contacts(client, account, statuses="QUALIFIED, DISQUALIFIED")
    free = await list_contacts(client, account, statuses="BOOKED")

    assert ids(one) == [qualified["id"]] and one.json()["data"]["count"] == 1
    assert ids(two) == [disqualified["id"], qualified["id"]]
    assert ids(free) == [potential["id"]]


async def test_event_ids_filter(client: Client, db: Database) -> None:
    account = await new_account(db)
    demo = await new_event(db, account, "Demo")
    call = await new_event(db, account, "Call")
    in_demo = await create(client, account, email="a@x.test", eventId=demo)
    in_call = await create(client, account, email="b@x.test", eventId=call)
    await create(client, account, email="c@x.test")

    assert ids(await list_contacts(client, account, eventIds=str(demo))) == [in_demo["id"]]
    both = await list_contacts(client, account, eventIds=f"{demo},{call}")
    assert ids(both) == [in_call["id"], in_demo["id"]]
    assert ids(await list_contacts(client, account, eventIds="999999")) == []


async def test_user_id_filter(client: Client, db: Database) -> None:
    owner = await new_account(db)
    colleague = await second_user(db, owner, "colleague@acme.test")
    mine = await create(client, owner, email="a@x.test")
    theirs = await create(client, colleague, email="b@x.test")

    assert ids(await list_contacts(client, owner, userId=owner.user_id)) == [mine["id"]]
    assert ids(await list_contacts(client, owner, userId=colleague.user_id)) == [theirs["id"]]
    assert len(ids(await list_contacts(client, colleague))) == 2  # the account's, not the user's


async def test_search_is_case_insensitive_over_names_email_and_phone(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    ada = await create(client, account, firstName="Ada", lastName="Lovelace", email="ada@x.test")
    bob = await create(client, account, firstName="Bob", lastName="Ross", email="paint@y.test")
    tel = await create(client, account, phoneNumber="+15559876543")
    under = await create(client, account, email="under_score@z.test")

    async def found(term: str) -> set[int]:
        return set(ids(await list_contacts(client, account, search=term)))

    assert await found("aDa") == {ada["id"]}
    assert await found("LOVE") == {ada["id"]}
    assert await found("ross") == {bob["id"]}
    assert await found("Y.TEST") == {bob["id"]}
    assert await found("98765") == {tel["id"]}
    assert await found("x.test") == {ada["id"]}
    # LIKE wildcards in the term are plain characters.
    assert await found("_") == {under["id"]}
    assert await found("%") == set()


async def test_search_folds_case_beyond_ascii(client: Client, db: Database) -> None:
    """SQLite's own lower() folds ASCII letters only; "éva" must still find "Éva"."""
    account = await new_account(db)
    eva = await create(client, account, firstName="Éva", lastName="Ödegård", email="e@x.test")
    await create(client, account, firstName="Eva", email="plain@x.test")
    dash = await create(client, account, firstName="Ça_va", email="c@x.test")

    async def found(term: str) -> set[int]:
        return set(ids(await list_contacts(client, account, search=term)))

    assert await found("éva") == {eva["id"]}
    assert await found("ÉVA") == {eva["id"]}
    assert await found("ödegÅrd") == {eva["id"]}
    assert await found("ça_") == {dash["id"]}
    assert await found("ça%") == set()  # wildcards stay plain characters here too
    # Folded by one function on both sides: a final capital sigma is lowered to the plain
    # sigma by PostgreSQL, to the final one by Python's lower().
    road = await create(client, account, firstName="ΟΔΟΣ", email="g@x.test")
    assert await found("ΟΔΟΣ") == {road["id"]}
    assert await found("οδοσ") == {road["id"]}


async def test_time_range_filter_is_inclusive_on_joined_time(client: Client, db: Database) -> None:
    account = await new_account(db)
    early = await create(client, account, email="a@x.test", joinedTime="2024-01-01T00:00:00Z")
    mid = await create(client, account, email="b@x.test", joinedTime="2024-02-01T00:00:00.000Z")
    late = await create(client, account, email="c@x.test", joinedTime="2024-03-01T00:00:00Z")

    between = await list_contacts(
        client, account, timeFrom="2024-01-01T00:00:00.000Z", timeTo="2024-02-01T00:00:00Z"
    )
    after = await list_contacts(client, account, timeFrom="2024-01-01T00:00:00.001Z")
    before = await list_contacts(client, account, timeTo="2024-02-29T23:59Z")

    assert ids(between) == [mid["id"], early["id"]]
    assert between.json()["data"]["count"] == 2
    assert ids(after) == [late["id"], mid["id"]]
    assert ids(before) == [mid["id"], early["id"]]


async def test_filters_combine(client: Client, db: Database) -> None:
    account = await new_account(db)
    target = await create(client, account, firstName="Zed", email="a@x.test", status="QUALIFIED")
    await create(client, account, firstName="Zed", email="b@x.test")
    await create(client, account, firstName="Amy", email="c@x.test", status="QUALIFIED")
    response = await list_contacts(client, account, statuses="QUALIFIED", search="zed")
    assert ids(response) == [target["id"]]
    assert response.json()["data"]["count"] == 1


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("createdAt", "created_at"),
        ("updatedAt", "updated_at"),
        ("joinedTime", "joined_time"),
    ],
)
async def test_ordering_by_each_time_column(
    client: Client, db: Database, column: str, values: str
) -> None:
    account, created = await five(client, db)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    offsets = [3, 1, 4, 1, 5]  # a tie (1, 1): broken by id, in the same direction
    for contact_id, minutes in zip(created, offsets, strict=True):
        await set_columns(db, contact_id, **{values: base + timedelta(minutes=minutes)})
    expected = [c for _, c in sorted(zip(offsets, created, strict=True))]

    ascending = await list_contacts(client, account, orderBy="asc", orderColumn=column)
    descending = await list_contacts(client, account, orderBy="desc", orderColumn=column)

    assert ids(ascending) == expected
    assert ids(descending) == expected[::-1]


async def test_ordering_by_id(client: Client, db: Database) -> None:
    account, created = await five(client, db)
    ascending = await list_contacts(client, account, orderBy="asc", orderColumn="id")
    descending = await list_contacts(client, account, orderBy="desc", orderColumn="id", limit=2)
    assert ids(ascending) == created
    assert ids(descending) == created[::-1][:2]


@pytest.mark.parametrize(("column", "field"), [("firstName", "f"), ("lastName", "l")])
async def test_ordering_by_names_puts_missing_values_lowest(
    client: Client, db: Database, column: str, field: str
) -> None:
    account = await new_account(db)
    key = "firstName" if field == "f" else "lastName"
    carol = await create(client, account, email="1@x.test", **{key: "carol"})
    nobody = await create(client, account, email="2@x.test")
    alice = await create(client, account, email="3@x.test", **{key: "alice"})
    bob = await create(client, account, email="4@x.test", **{key: "bob"})
    alice2 = await create(client, account, email="5@x.test", **{key: "alice"})

    ascending = await list_contacts(client, account, orderBy="asc", orderColumn=column)
    descending = await list_contacts(client, account, orderBy="desc", orderColumn=column)

    order = [nobody, alice, alice2, bob, carol]
    assert ids(ascending) == [c["id"] for c in order]
    assert ids(descending) == [c["id"] for c in order[::-1]]


async def test_ordering_by_email(client: Client, db: Database) -> None:
    account = await new_account(db)
    b = await create(client, account, email="b@x.test")
    phone_only = await create(client, account, phoneNumber="+15550001111")
    a = await create(client, account, email="a@x.test")
    ascending = await list_contacts(client, account, orderBy="asc", orderColumn="email")
    descending = await list_contacts(client, account, orderBy="desc", orderColumn="email")
    assert ids(ascending) == [phone_only["id"], a["id"], b["id"]]
    assert ids(descending) == [b["id"], a["id"], phone_only["id"]]


async def test_soft_deleted_contacts_are_not_listed_or_counted(
    client: Client, db: Database
) -> None:
    account, created = await five(client, db)
    response = await client.delete(
        "/v1/contacts", params={"id": created[1]}, headers=account.headers
    )
    assert response.status_code == 200
    listing = await list_contacts(client, account, limit=100)
    assert created[1] not in ids(listing)
    assert listing.json()["data"]["count"] == 4


async def test_repeated_parameter_keeps_its_last_value(client: Client, db: Database) -> None:
    account, _ = await five(client, db)
    response = await client.get("/v1/contacts?limit=1&limit=3", headers=account.headers)
    assert len(ids(response)) == 3


def test_each_order_column_offered_is_served_by_an_index_in_the_published_order() -> None:
    """Written in three places (the type, the wire-to-column map, the indexes): a choice
    the map lacks would be a 500, one without an index a slow listing."""
    literal = get_args(get_args(OrderColumn)[0])
    assert literal == ORDER_COLUMNS == tuple(ORDER_COLUMN)
    assert tuple(ORDER_COLUMN.values()) == CONTACT_ORDER_COLUMNS
