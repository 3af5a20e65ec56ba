"""The pure-ASGI hot routes answer exactly as the Litestar routes behind them do.

Requests with an Idempotency-Key go through Litestar's route (the hot route leaves them to the
idempotency middleware), so each request is sent both ways and the answers compared.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from contacts_api.contacts.router import CREATE_CONTACT, create_from_request
from contacts_api.http.hot_routes import HotRoute, HotRoutes
from contacts_api.http.raw_asgi import Message, Scope
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from tests.conftest import make_settings
from tests.contacts.helpers import Client
from tests.contacts.test_create import SEED_BODY
from tests.factories import new_account, new_event

BODY_LIMIT = 4096
# Differ between any two answers by nature, not by path.
VOLATILE_FIELDS = {"id", "previewId", "createdAt", "updatedAt", "joinedTime"}
VOLATILE_HEADERS = {"x-request-id", "date", "idempotency-key"}

_keys = itertools.count()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, rate_limit="100000/1", max_body_bytes=BODY_LIMIT)


def _normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "…" if k in VOLATILE_FIELDS else _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _answer(response: httpx.Response) -> tuple[int, Any, list[str], str | None]:
    """Status, body (volatile fields masked), header names (volatile ones left out), type."""
    names = sorted({k.lower() for k in response.headers} - VOLATILE_HEADERS)
    return (
        response.status_code,
        _normalised(response.json()),
        names,
        response.headers.get("content-type"),
    )


async def both_ways(
    client: Client, headers: dict[str, str], **kwargs: Any
) -> tuple[httpx.Response, httpx.Response]:
    """The same request on the hot route and (with an Idempotency-Key) through Litestar."""
    hot = await client.post("/v1/contacts", headers=headers, **kwargs)
    keyed = {**headers, "Idempotency-Key": f"parity-{next(_keys)}"}
    routed = await client.post("/v1/contacts", headers=keyed, **kwargs)
    return hot, routed


async def test_a_create_and_an_upsert_answer_alike(client: Client, db: Database) -> None:
    account = await new_account(db)
    await new_event(db, account, "Product Demo", "acme/demo")
    keyed = {**account.headers, "Idempotency-Key": "parity-create"}
    hot = await client.post(
        "/v1/contacts", json={**SEED_BODY, "email": "a@x.io"}, headers=account.headers
    )
    routed = await client.post("/v1/contacts", json={**SEED_BODY, "email": "b@x.io"}, headers=keyed)
    assert hot.status_code == routed.status_code == 201
    assert hot.json()["data"]["contact"]["email"] == "a@x.io"
    hot_answer, routed_answer = _answer(hot), _answer(routed)
    assert hot_answer[0] == routed_answer[0]
    assert {**hot_answer[1]["data"]["contact"], "email": "b@x.io"} == routed_answer[1]["data"][
        "contact"
    ]
    assert hot_answer[2:] == routed_answer[2:]
    assert "ratelimit-limit" in hot_answer[2]
    # The same email again, each way: both update their one contact (200) alike.
    hot = await client.post(
        "/v1/contacts", json={"email": "A@x.io", "lastName": "B"}, headers=account.headers
    )
    keyed = {**account.headers, "Idempotency-Key": "parity-upsert"}
    routed = await client.post(
        "/v1/contacts", json={"email": "A@x.io", "lastName": "B"}, headers=keyed
    )
    assert hot.status_code == routed.status_code == 200
    assert hot.json()["data"]["contact"]["id"] == routed.json()["data"]["contact"]["id"]
    assert _answer(hot) == _answer(routed)


@pytest.mark.parametrize(
    ("case", "request_kwargs", "status"),
    [
        ("invalid fields", {"json": {"email": "nope", "status": "WON"}}, 400),
        ("neither email nor phone", {"json": {"firstName": "Jane"}}, 400),
        ("not an object", {"json": [1, 2]}, 400),
        (
            "malformed JSON",
            {"content": b'{"email": ', "headers": {"content-type": "application/json"}},
            400,
        ),
        ("not JSON", {"content": b"email=a@x.io", "headers": {"content-type": "text/plain"}}, 415),
        ("too large", {"json": {"email": "a@x.io", "lastName": "x" * BODY_LIMIT}}, 413),
        ("unknown event", {"json": {"email": "a@x.io", "eventName": "Nope"}}, 400),
    ],
)
async def test_bad_input_is_answered_alike(
    client: Client, db: Database, case: str, request_kwargs: dict[str, Any], status: int
) -> None:
    account = await new_account(db)
    kwargs = dict(request_kwargs)  # shared by both database runs: never mutate it
    extra_headers = kwargs.pop("headers", {})
    hot, routed = await both_ways(client, {**account.headers, **extra_headers}, **kwargs)
    assert hot.status_code == status, (case, hot.text)
    assert _answer(hot) == _answer(routed), case


@pytest.mark.parametrize(
    "authorization", [None, "Bearer iclosed_not-a-real-key", "Basic abc", "Bearer "]
)
async def test_refused_keys_are_answered_alike(
    client: Client, db: Database, authorization: str | None
) -> None:
    await new_account(db)
    headers = {} if authorization is None else {"Authorization": authorization}
    hot, routed = await both_ways(client, headers, json={"email": "a@x.io"})
    assert hot.status_code == 401
    assert _answer(hot) == _answer(routed)


async def test_only_plain_creates_take_the_hot_route() -> None:
    """Other paths, methods and keyed requests reach the app behind it untouched."""
    passed: list[tuple[str, str]] = []

    async def behind(scope: Scope, receive: Any, send: Any) -> None:
        passed.append((scope["method"], scope["path"]))

    class FakeLitestar:
        routes: list[Any] = []  # no path of its own to answer OPTIONS for

        def get_handler_index_by_name(self, name: str) -> dict[str, Any]:
            return {"handler": object()}

    hot = [HotRoute("POST", "/v1/contacts", CREATE_CONTACT, create_from_request)]
    route = HotRoutes(behind, FakeLitestar(), hot)  # type: ignore[arg-type]

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        raise AssertionError("the hot route must not answer these")

    def scope(method: str, path: str, *headers: tuple[bytes, bytes]) -> Scope:
        return {"type": "http", "method": method, "path": path, "headers": list(headers)}

    await route(scope("GET", "/v1/contacts"), receive, send)
    await route(scope("POST", "/v1/contacts/bulk"), receive, send)
    await route(scope("PUT", "/v1/contacts"), receive, send)
    await route(scope("POST", "/v1/contacts", (b"idempotency-key", b"k1")), receive, send)
    await route(scope("POST", "/v1/contacts", (b"Idempotency-Key", b"k2")), receive, send)
    assert passed == [
        ("GET", "/v1/contacts"),
        ("POST", "/v1/contacts/bulk"),
        ("PUT", "/v1/contacts"),
        ("POST", "/v1/contacts"),
        ("POST", "/v1/contacts"),
    ]


async def test_a_plain_create_is_answered_by_the_hot_route(client: Client, db: Database) -> None:
    """Nothing behind the hot route runs for a plain create: a broken Litestar route changes
    nothing, while a keyed create (which Litestar serves) fails."""
    account = await new_account(db)
    app = client.app
    hot_route = app.asgi_handler.app  # type: ignore[attr-defined]
    assert isinstance(hot_route, HotRoutes)

    async def broken(scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("Litestar's stack was reached")

    original, hot_route.app = hot_route.app, broken
    try:
        response = await client.post(
            "/v1/contacts", json={"email": "a@x.io"}, headers=account.headers
        )
        assert response.status_code == 201
        with pytest.raises(RuntimeError, match="reached"):
            await client.post(
                "/v1/contacts",
                json={"email": "b@x.io"},
                headers={**account.headers, "Idempotency-Key": "k"},
            )
    finally:
        hot_route.app = original


async def test_listing_and_detail_are_answered_by_their_hot_routes(
    client: Client, db: Database
) -> None:
    """GET /v1/contacts and /v1/contacts/detail skip Litestar too, errors included."""
    account = await new_account(db)
    created = await client.post("/v1/contacts", json={"email": "a@x.io"}, headers=account.headers)
    contact_id = created.json()["data"]["contact"]["id"]
    hot_route = client.app.asgi_handler.app  # type: ignore[attr-defined]

    async def broken(scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("Litestar's stack was reached")

    original, hot_route.app = hot_route.app, broken
    try:
        listed = await client.get("/v1/contacts", headers=account.headers)
        searched = await client.get("/v1/contacts?search=a%40x", headers=account.headers)
        detail = await client.get(
            "/v1/contacts/detail", params={"contactId": contact_id}, headers=account.headers
        )
        missing = await client.get(
            "/v1/contacts/detail", params={"contactId": contact_id + 1}, headers=account.headers
        )
        invalid = await client.get("/v1/contacts?limit=abc", headers=account.headers)
        no_key = await client.get("/v1/contacts/detail?contactId=1")
    finally:
        hot_route.app = original
    assert listed.json()["data"]["count"] == searched.json()["data"]["count"] == 1
    assert detail.json()["data"]["id"] == contact_id
    assert (missing.status_code, missing.json()) == (404, {"message": "Contact not found"})
    assert invalid.status_code == 400
    assert invalid.json()["message"]["method"] == "GET"
    assert no_key.status_code == 401
    assert "ratelimit-limit" in detail.headers
