"""Subscribing, listing, rotating and deleting webhooks; the SSRF guard at subscription."""

from __future__ import annotations

import base64
import ipaddress
import socket
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from contacts_api.app import create_app
from contacts_api.storage.engine import Database
from contacts_api.webhooks.ssrf import is_public
from tests.conftest import make_settings
from tests.factories import new_account
from tests.webhooks.conftest import Client, subscribe


async def test_subscribe_shows_the_secret_once_and_lists_without_it(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    webhook = await subscribe(
        client,
        account,
        "http://127.0.0.1:9/hook",
        ("contactUpdated", "contact.created", "contactDetailChanged", "contactDeleted"),
    )
    assert webhook["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(webhook["secret"].removeprefix("whsec_"))) <= 64
    # Aliases are stored under their canonical names, once each.
    assert webhook["events"] == ["contactDetailChanged", "newContactCreated", "contactDeleted"]
    assert webhook["disabledAt"] is None

    listed = await client.get("/v1/webhooks", headers=account.headers)
    assert listed.status_code == 200
    [only] = listed.json()["data"]["webhooks"]
    assert only["id"] == webhook["id"] and "secret" not in only


async def test_invalid_subscriptions_list_every_failing_field(client: Client, db: Database) -> None:
    account = await new_account(db)
    response = await client.post("/v1/webhooks", json={}, headers=account.headers)
    assert response.status_code == 400
    assert response.json()["message"]["details"]["fieldErrors"] == {
        "url": ["Required"],
        "events": ["Required"],
    }
    response = await client.post(
        "/v1/webhooks",
        json={"url": "ftp://example.com/x", "events": ["contactMerged"]},
        headers=account.headers,
    )
    errors = response.json()["message"]["details"]["fieldErrors"]
    assert errors["url"] == ["Invalid url"]
    assert "received 'contactMerged'" in errors["events"][0]
    # Every failing item, non-strings named as JavaScript names them (once Python's 'None').
    events = [None, "newContactCreated", True, {"a": 1}, "nope", 5]
    response = await client.post(
        "/v1/webhooks",
        json={"url": "https://93.184.216.34/hook", "events": events},
        headers=account.headers,
    )
    messages = response.json()["message"]["details"]["fieldErrors"]["events"]
    assert messages[:3] == [
        "Expected string, received null",
        "Expected string, received boolean",
        "Expected string, received object",
    ]
    assert messages[3].startswith("Invalid enum value. Expected 'newContactCreated' | ")
    assert messages[3].endswith(", received 'nope'")
    assert messages[4:] == ["Expected string, received number"]


@pytest.mark.parametrize(
    "url",
    [
        "http://\uff18.8.8.8/hook",
        "http://8.8.8.8\u200b/hook",
        "https://exa\u200bmple.com/",
        # Python drops a leading space, httpx reads a relative URL: no delivery was ever sent.
        " https://93.184.216.34/hook",
        "https://93.184.216.34/hook ",
    ],
)
async def test_a_url_python_resolves_but_httpx_cannot_send_to_is_invalid(
    client: Client, db: Database, url: str
) -> None:
    """Python's IDNA codec reads a full-width digit as a digit and drops a zero-width space;
    httpx, which sends the deliveries, refuses both."""
    account = await new_account(db)
    body = {"url": url, "events": ["newContactCreated"]}
    response = await client.post("/v1/webhooks", json=body, headers=account.headers)
    assert response.status_code == 400, response.text
    assert response.json()["message"]["details"]["fieldErrors"] == {"url": ["Invalid url"]}


async def test_a_url_to_port_0_is_invalid(client: Client, db: Database) -> None:
    """Nothing listens on port 0; read as "no port", the URL was checked as one to port 443."""
    account = await new_account(db)
    body = {"url": "https://93.184.216.34:0/hook", "events": ["newContactCreated"]}
    response = await client.post("/v1/webhooks", json=body, headers=account.headers)
    assert response.status_code == 400, response.text
    assert response.json()["message"]["details"]["fieldErrors"] == {"url": ["Invalid url"]}


@pytest.mark.parametrize(
    ("body", "field_errors"),
    [
        (
            {"url": "http://a.example/\x00", "events": "newContactCreated"},
            {
                "url": ["String must not contain NUL characters"],
                "events": ["Expected array, received string"],
            },
        ),
        (
            # 1017 code points but 2017 UTF-16 units: JavaScript's length is what counts.
            {"url": "http://a.example/" + "\U0001f600" * 1000, "events": []},
            {
                "url": ["String must contain at most 2000 character(s)"],
                "events": ["Array must contain at least 1 element(s)"],
            },
        ),
        ({"url": 5, "events": [7]}, {"url": ["Expected string, received number"]}),
    ],
)
async def test_subscription_bodies_are_checked_against_the_documented_schema(
    client: Client, db: Database, body: dict[str, object], field_errors: dict[str, list[str]]
) -> None:
    account = await new_account(db)
    response = await client.post("/v1/webhooks", json=body, headers=account.headers)
    assert response.status_code == 400
    errors = response.json()["message"]["details"]["fieldErrors"]
    for name, messages in field_errors.items():
        assert errors[name] == messages, name


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({}, ["Required"]),
        ({"messageId": ""}, ["Required"]),
        ({"messageId": 12}, ["Expected string, received number"]),
        ({"messageId": "msg_\x00"}, ["String must not contain NUL characters"]),
        ({"messageId": "m" * 41}, ["String must contain at most 40 character(s)"]),
    ],
)
async def test_redeliver_bodies_are_checked_against_the_documented_schema(
    client: Client, db: Database, body: dict[str, object], messages: list[str]
) -> None:
    account = await new_account(db)
    response = await client.post("/v1/webhooks/redeliver", json=body, headers=account.headers)
    assert response.status_code == 400
    assert response.json()["message"]["details"]["fieldErrors"] == {"messageId": messages}


@pytest.mark.parametrize("path", ["/v1/webhooks/rotate-secret", "/v1/webhooks/enable"])
@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({}, ["Required"]),
        ({"id": None}, ["Required"]),
        ({"id": ""}, ["Required"]),  # not given, as everywhere (was a 500 on rotate-secret)
        ({"id": "1"}, ["Expected number, received string"]),
        ({"id": 0}, ["Number must be greater than or equal to 1"]),
    ],
)
async def test_webhook_id_bodies_are_checked_field_by_field(
    client: Client, db: Database, path: str, body: dict[str, object], messages: list[str]
) -> None:
    account = await new_account(db)
    response = await client.post(path, json=body, headers=account.headers)
    assert response.status_code == 400
    assert response.json()["message"]["details"]["fieldErrors"] == {"id": messages}


async def test_delete_and_another_accounts_webhook_is_not_found(
    client: Client, db: Database
) -> None:
    acme = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    webhook = await subscribe(client, acme, "http://127.0.0.1:9/hook")

    foreign = await client.delete(f"/v1/webhooks?id={webhook['id']}", headers=other.headers)
    assert foreign.status_code == 404
    assert foreign.json() == {"message": "Webhook not found"}

    deleted = await client.delete(f"/v1/webhooks?id={webhook['id']}", headers=acme.headers)
    assert deleted.status_code == 200
    listed = await client.get("/v1/webhooks", headers=acme.headers)
    assert listed.json()["data"]["webhooks"] == []


@pytest.mark.parametrize(
    ("method", "path", "field_errors"),
    [
        (
            "GET",
            "/v1/webhooks/deliveries?limit=500",
            {"limit": ["Number must be less than or equal to 100"]},
        ),
        (
            "GET",
            "/v1/webhooks/deliveries?webhookId=2147483648&page=-1&limit=x",
            {
                "webhookId": ["Number must be less than or equal to 2147483647"],
                "page": ["Number must be greater than or equal to 0"],
                "limit": ["Expected number, received nan"],
            },
        ),
        (
            "GET",
            "/v1/webhooks/deliveries?webhookId=0",
            {"webhookId": ["Number must be greater than or equal to 1"]},
        ),
        ("DELETE", "/v1/webhooks", {"id": ["Required"]}),
        ("DELETE", "/v1/webhooks?id=abc", {"id": ["Expected number, received nan"]}),
        (
            "DELETE",
            "/v1/webhooks?id=99999999999999999999",
            {"id": ["Number must be less than or equal to 2147483647"]},
        ),
    ],
)
async def test_query_errors_use_the_v1_400_shape(
    client: Client, db: Database, method: str, path: str, field_errors: dict[str, list[str]]
) -> None:
    account = await new_account(db)
    response = await client.request(method, path, headers=account.headers)
    assert response.status_code == 400, path
    message = response.json()["message"]
    assert message["endpoint"] == path.partition("?")[0]
    assert message["details"]["fieldErrors"] == field_errors


async def test_deliveries_of_an_unknown_or_foreign_webhook_are_not_found(
    client: Client, db: Database
) -> None:
    acme = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    webhook = await subscribe(client, acme, "http://127.0.0.1:9/hook")
    empty = await client.get("/v1/webhooks/deliveries", headers=acme.headers)
    assert empty.json() == {"data": {"count": 0, "deliveries": []}}
    own = await client.get(
        f"/v1/webhooks/deliveries?webhookId={webhook['id']}&page=0&limit=5", headers=acme.headers
    )
    assert own.json() == {"data": {"count": 0, "deliveries": []}}
    for account, webhook_id in ((other, webhook["id"]), (acme, webhook["id"] + 1000)):
        response = await client.get(
            f"/v1/webhooks/deliveries?webhookId={webhook_id}", headers=account.headers
        )
        assert response.status_code == 404
        assert response.json() == {"message": "Webhook not found"}


async def test_rotate_secret_answers_a_new_secret(client: Client, db: Database) -> None:
    account = await new_account(db)
    webhook = await subscribe(client, account, "http://127.0.0.1:9/hook")
    response = await client.post(
        "/v1/webhooks/rotate-secret", json={"id": webhook["id"]}, headers=account.headers
    )
    assert response.status_code == 200
    rotated = response.json()["data"]["webhook"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != webhook["secret"]
    missing = await client.post(
        "/v1/webhooks/rotate-secret", json={"id": 999}, headers=account.headers
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:0:7f00:1]/hook",
        "http://[fec0::1]/hook",
    ],
)
async def test_private_destinations_are_refused_without_the_setting(
    database_url: str, db: Database, url: str
) -> None:
    account = await new_account(db)
    app = create_app(make_settings(database_url))  # webhooks_allow_private stays off
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/v1/webhooks",
            json={"url": url, "events": ["newContactCreated"]},
            headers=account.headers,
        )
    assert response.status_code == 400
    [message] = response.json()["message"]["details"]["fieldErrors"]["url"]
    assert message.endswith(" does not resolve to a public address")
    assert "(" not in message  # which address it was is not said


async def test_an_unknown_name_and_an_internal_one_get_the_same_answer(
    database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered `cannot resolve nosuch` but `vault resolves to a non-public address`, a tenant
    could list which names the server's internal DNS knows. The resolver is outside us: faked."""

    def internal_dns(host: str, *_args: Any, **_kwargs: Any) -> Any:
        if host == "vault":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", internal_dns)
    account = await new_account(db)
    app = create_app(make_settings(database_url))
    answers = []
    async with AsyncTestClient(app=app) as client:
        for host in ("vault", "nosuch"):
            response = await client.post(
                "/v1/webhooks",
                json={"url": f"http://{host}/hook", "events": ["newContactCreated"]},
                headers=account.headers,
            )
            assert response.status_code == 400
            [message] = response.json()["message"]["details"]["fieldErrors"]["url"]
            answers.append(message.replace(host, "HOST"))
    assert answers == ["HOST does not resolve to a public address"] * 2


@pytest.mark.parametrize(
    "url", ["http://a..com/hook", "http://.com/", f"http://{'a' * 64}.com/", "http://\u00ad/"]
)
async def test_host_names_idna_refuses_are_a_400_on_url(
    database_url: str, db: Database, url: str
) -> None:
    """Once a 500: the resolver's IDNA encoding raised UnicodeError, not OSError."""
    account = await new_account(db)
    app = create_app(make_settings(database_url))
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/v1/webhooks",
            json={"url": url, "events": ["newContactCreated"]},
            headers=account.headers,
        )
    assert response.status_code == 400, response.text
    assert list(response.json()["message"]["details"]["fieldErrors"]) == ["url"]


async def test_an_account_has_at_most_25_webhooks(database_url: str, db: Database) -> None:
    account = await new_account(db)
    other = await new_account(db, "other", "owner@other.test")
    app = create_app(make_settings(database_url, webhooks_allow_private=True))
    body = {"url": "http://127.0.0.1:9/hook", "events": ["newContactCreated"]}
    async with AsyncTestClient(app=app) as client:
        made = [
            await client.post("/v1/webhooks", json=body, headers=account.headers) for _ in range(25)
        ]
        over = await client.post("/v1/webhooks", json=body, headers=account.headers)
        elsewhere = await client.post("/v1/webhooks", json=body, headers=other.headers)
        first = made[0].json()["data"]["webhook"]["id"]
        await client.delete(f"/v1/webhooks?id={first}", headers=account.headers)
        room = await client.post("/v1/webhooks", json=body, headers=account.headers)
    assert [r.status_code for r in made] == [201] * 25
    assert over.status_code == 400
    assert over.json()["message"]["details"] == {
        "formErrors": ["An account can have at most 25 webhooks"],
        "fieldErrors": {},
    }
    assert elsewhere.status_code == 201  # per account
    assert room.status_code == 201  # a deleted one makes room


def test_public_addresses_pass_and_special_ones_do_not() -> None:
    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))
    assert is_public(ipaddress.ip_address("::ffff:93.184.216.34"))
    assert is_public(ipaddress.ip_address("2002:5db8:d822::1"))  # 6to4 of 93.184.216.34
    for special in (
        "100.64.0.1",
        "fd00:ec2::254",
        "224.0.0.1",
        "240.0.0.1",
        "fe80::1",
        # IPv4 wrapped in IPv6: mapped, IPv4-compatible, NAT64, 6to4, Teredo.
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::5db8:d822",  # NAT64 of a public address is refused too (the /96 is)
        "64:ff9b:1::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
        "2001:0:a9fe:a9fe::1",  # Teredo via server 169.254.169.254
        "::ffff:0:7f00:1",  # IPv4-translated (SIIT) 127.0.0.1
        "fec0::1",  # site-local, deprecated but routed in some networks
    ):
        assert not is_public(ipaddress.ip_address(special)), special
