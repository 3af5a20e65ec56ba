"""Hostile input is a 400 (or a row in the import's error report), never a 5xx or a traceback:
JSON nested too deep to decode, year 0000, control characters in UTM values, odd digits."""

from __future__ import annotations

from typing import Any

import pytest

from contacts_api.storage.engine import Database
from tests.contacts.helpers import Client
from tests.factories import AccountFixture, new_account

MALFORMED = {"formErrors": ["Malformed JSON in request body"], "fieldErrors": {}}
DEEP = [b"[" * 5000, b'{"a":' * 5000, b'{"contacts":' + b"[" * 5000]


@pytest.fixture
async def account(db: Database) -> AccountFixture:
    return await new_account(db)


def post_raw(client: Client, account: AccountFixture, path: str, raw: bytes) -> Any:
    headers = {**account.headers, "Content-Type": "application/json"}
    return client.post(path, content=raw, headers=headers)


@pytest.mark.parametrize("raw", DEEP)
async def test_bulk_deeply_nested_json_is_malformed_json(
    client: Client, account: AccountFixture, raw: bytes
) -> None:
    response = await post_raw(client, account, "/v1/contacts/bulk", raw)
    assert response.status_code == 400, response.text
    assert response.json()["message"]["details"] == MALFORMED


async def test_bulk_still_refuses_non_json_content_type(
    client: Client, account: AccountFixture
) -> None:
    headers = {**account.headers, "Content-Type": "text/plain"}
    response = await client.post("/v1/contacts/bulk", content=b"[]", headers=headers)
    assert response.status_code == 415


async def test_year_below_1000_reads_back_with_four_digits(
    client: Client, account: AccountFixture
) -> None:
    created = await client.post(
        "/v1/contacts",
        json={"email": "old@example.com", "joinedTime": "0999-01-01T00:00Z"},
        headers=account.headers,
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["data"]["contact"]["id"]
    read = await client.get(
        "/v1/contacts/detail", params={"contactId": contact_id}, headers=account.headers
    )
    assert read.status_code == 200, read.text
    assert read.json()["data"]["joinedTime"] == "0999-01-01T00:00:00.000Z"
