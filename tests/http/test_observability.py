"""Request ids, the access log's context, Prometheus /metrics and clean database outages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from contacts_api.app import create_app
from contacts_api.http import observability
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from tests.conftest import make_settings
from tests.factories import new_account
from tests.servers import free_port

Client = AsyncTestClient[Litestar]


async def test_every_response_carries_a_request_id(client: Client) -> None:
    first = await client.get("/healthz")
    second = await client.get("/no-such-route")

    assert len(first.headers["X-Request-Id"]) >= 16
    assert second.status_code == 404
    assert second.headers["X-Request-Id"] not in ("", first.headers["X-Request-Id"])


async def test_a_sane_incoming_request_id_is_kept_and_a_strange_one_replaced(
    client: Client,
) -> None:
    kept = await client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.42"})
    replaced = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})

    assert kept.headers["X-Request-Id"] == "lb-7f3a.42"
    assert replaced.headers["X-Request-Id"] != "bad id\twith spaces"


async def test_every_answer_forbids_sniffing_framing_and_caching(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    replayed = {**account.headers, "Idempotency-Key": "k1"}
    await client.post("/v1/contacts", json={"email": "r@example.com"}, headers=replayed)
    answers = {
        "health": await client.get("/healthz"),
        "unknown route": await client.get("/no-such-route"),
        "no key": await client.get("/v1/contacts"),
        "create (fast path)": await client.post(
            "/v1/contacts", json={"email": "a@example.com"}, headers=account.headers
        ),
        "invalid create": await client.post(
            "/v1/contacts", json={"email": "x"}, headers=account.headers
        ),
        "list": await client.get("/v1/contacts?limit=50", headers=account.headers),
        "replay": await client.post(
            "/v1/contacts", json={"email": "r@example.com"}, headers=replayed
        ),
        "docs page": await client.get("/docs"),
    }
    assert answers["replay"].headers["Idempotent-Replayed"] == "true"
    for what, answer in answers.items():
        assert answer.status_code < 500, what
        # Once each: a replayed answer's stored headers do not hold them a second time.
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"], what
        assert answer.headers.get_list("content-security-policy") == ["frame-ancestors 'none'"], (
            what
        )
        assert answer.headers.get_list("cache-control") == ["no-store"], what


def metric_value(text: str, sample: str) -> float:
    """The value of one sample line of the Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_requests_by_route_and_status_and_contacts_created(
    client: Client, db: Database
) -> None:
    account = await new_account(db)
    created_201 = (
        'contacts_api_http_requests_total{method="POST",route="/v1/contacts",status="201"}'
    )
    unmatched = 'contacts_api_http_requests_total{method="GET",route="unmatched",status="404"}'
    contacts = "contacts_api_contacts_created_total"
    # The registry lives as long as the process: compare against what it said before.
    before = (await client.get("/metrics")).text

    await client.post("/v1/contacts", json={"email": "a@example.com"}, headers=account.headers)
    await client.post("/v1/contacts", json={"email": "b@example.com"}, headers=account.headers)
    await client.post("/v1/contacts", json={"email": "a@example.com"}, headers=account.headers)
    # The batch endpoint's creates count too (two new, one an upsert, one invalid).
    batch = [
        {"email": "c@example.com"},
        {"email": "a@example.com"},
        {"email": "x"},
        {"phoneNumber": "+15550001111"},
    ]
    bulk = await client.post("/v1/contacts/bulk", json={"contacts": batch}, headers=account.headers)
    assert [r["status"] for r in bulk.json()["data"]["results"]] == [201, 200, 400, 201]
    await client.get("/no-such-route")
    scrape = await client.get("/metrics")
    after = scrape.text
    # Prometheus's text format, its charset said once (Litestar adds it to any text type).
    assert scrape.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"

    assert metric_value(after, created_201) - metric_value(before, created_201) == 2
    assert metric_value(after, unmatched) - metric_value(before, unmatched) == 1
    assert metric_value(after, contacts) - metric_value(before, contacts) == 4  # upsert: no
    assert "contacts_api_http_request_duration_seconds_bucket{" in after
    assert "# TYPE contacts_api_rate_limited_total counter" in after


@contextmanager
def access_lines(level: int) -> Iterator[list[dict[str, Any]]]:
    """The access lines logged meanwhile, the root logger at `level` (as configure_logging
    sets CONTACTS_API_LOG_LEVEL)."""
    lines: list[dict[str, Any]] = []
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        with capture_logs() as logs:
            yield lines
    finally:
        root.setLevel(before)
        lines.extend(line for line in logs if line["event"] == "request")


@pytest.mark.parametrize(("level", "logged"), [(logging.INFO, True), (logging.WARNING, False)])
async def test_the_access_log_follows_the_log_level(
    client: Client, db: Database, level: int, logged: bool
) -> None:
    account = await new_account(db)
    with access_lines(level) as access:
        response = await client.post(
            "/v1/contacts", json={"email": "a@example.com"}, headers=account.headers
        )
    assert response.status_code == 201
    assert len(access) == (1 if logged else 0)
    if logged:
        assert (access[0]["route"], access[0]["status"]) == ("/v1/contacts", 201)


async def test_the_access_log_cuts_a_long_path_short(client: Client) -> None:
    """A client chooses its path, up to the head limit (32 KiB), for each line."""
    with access_lines(logging.INFO) as access:
        response = await client.get("/v1/" + "x" * 5000)
    assert response.status_code == 404
    [line] = access
    assert line["path"] == "/v1/" + "x" * (observability.LOGGED_PATH_CHARS - 4) + "…"
    assert line["route"] == "unmatched"


async def test_group_commit_batches_are_measured(client: Client, db: Database) -> None:
    account = await new_account(db)
    total = "contacts_api_commit_batch_size_sum"
    batches = "contacts_api_commit_batch_size_count"
    before = (await client.get("/metrics")).text
    answers = await asyncio.gather(
        *(
            client.post(
                "/v1/contacts", json={"email": f"b{n}@example.com"}, headers=account.headers
            )
            for n in range(20)
        )
    )
    after = (await client.get("/metrics")).text
    assert [a.status_code for a in answers] == [201] * 20
    assert metric_value(after, total) - metric_value(before, total) == 20
    assert 1 <= metric_value(after, batches) - metric_value(before, batches) <= 20


async def test_rate_limit_rejections_are_counted(settings: Settings, db: Database) -> None:
    account = await new_account(db)
    rejected = 'contacts_api_rate_limited_total{reason="account"}'
    app = create_app(make_settings(settings.database_url, rate_limit="1/60"))
    async with AsyncTestClient(app=app) as client:
        before = (await client.get("/metrics")).text
        answers = [
            await client.post(
                "/v1/contacts", json={"email": f"{n}@example.com"}, headers=account.headers
            )
            for n in range(3)
        ]
        after = (await client.get("/metrics")).text

    assert [answer.status_code for answer in answers] == [201, 429, 429]
    assert metric_value(after, rejected) - metric_value(before, rejected) == 2


async def test_an_unreachable_database_gives_clean_503s() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    async with AsyncTestClient(app=create_app(make_settings(url))) as client:
        ready = await client.get("/readyz")
        create = await client.post(
            "/v1/contacts",
            json={"email": "a@example.com"},
            headers={"Authorization": "Bearer iclosed_whatever"},
        )
        alive = await client.get("/healthz")

    assert ready.status_code == 503
    assert create.status_code == 503
    assert create.json() == {"message": "Service temporarily unavailable"}
    assert "Traceback" not in create.text
    assert alive.status_code == 200


async def test_an_answer_with_its_own_cache_control_keeps_it() -> None:
    """No route sets one today; the wrapper must not add a second, contradicting one."""
    sent: list[Any] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"cache-control", b"max-age=60")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    wrapper = observability.ObservabilityMiddleware(route, access_log=False)
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    await wrapper(scope, receive, send)  # type: ignore[arg-type]

    headers = sent[0]["headers"]
    assert [v for n, v in headers if n == b"cache-control"] == [b"max-age=60"]
    assert (b"x-content-type-options", b"nosniff") in headers
