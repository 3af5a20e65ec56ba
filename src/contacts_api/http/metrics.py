"""Prometheus metrics, and /metrics, which works with any number of uvicorn workers.

`contacts-api serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before any worker
starts; each worker then writes its samples to memory-mapped files there and /metrics, whichever
worker answers it, adds up every worker's files. Without that variable (tests, a bare
`uvicorn --factory`), the process's own registry is served.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

import structlog
from litestar import Request, Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from contacts_api.http.state import app_db
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow
from contacts_api.webhooks.backlog import read_backlog

log = structlog.get_logger(__name__)
# The read counts every pending message: 0.24-0.36 s with 1,000,000 pending on PostgreSQL
# (a change review's measurement). Well inside Prometheus's default scrape timeout (10 s).
BACKLOG_READ_SECONDS = 3.0

REQUESTS = Counter(
    "contacts_api_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "contacts_api_http_request_duration_seconds",
    "Time from request to the end of the response, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CONTACTS_CREATED = Counter(
    "contacts_api_contacts_created_total", "Contacts created (an upsert that updates is not)."
)
COMMIT_BATCH_SIZE = Histogram(
    "contacts_api_commit_batch_size",
    "POST /v1/contacts requests per group-commit batch (one transaction, one commit), "
    "counted as the batch starts: updates and batches that fail count too.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
RATE_LIMITED = Counter(
    "contacts_api_rate_limited_total",
    "Requests answered 429: `account` (over its budget) or `auth_fail` (failed-key throttling).",
    ["reason"],
)


# (method, route, status) -> the labelled children; `.labels()` takes a lock on every call, and
# the set of keys is small (routes x methods x statuses), so each is looked up once.
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    key = (method, route, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        labels = (method, route, str(status))
        children = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
        _REQUEST_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


def exposition() -> bytes:
    """The text exposition of every worker's metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def backlog_exposition(db: Database) -> bytes:
    """The webhook outbox's backlog, read from the database at each scrape (the same for
    every worker: no worker's own count); nothing when the database does not answer."""
    try:
        # Bounded: a scrape during a database outage must not wait out a connect timeout
        # (10 s), past Prometheus's own (10 s), and lose the other metrics with it.
        async with asyncio.timeout(BACKLOG_READ_SECONDS), db.read() as conn:
            backlog = await read_backlog(conn, utcnow())
    except Exception as exc:  # /metrics answers all the same: an outage shows elsewhere
        log.warning("webhook backlog unreadable for /metrics", error=type(exc).__name__)
        return b""
    pending = GaugeMetricFamily(
        "contacts_api_webhook_messages_pending",
        "Webhook messages of enabled endpoints not yet delivered nor given up.",
        value=backlog.pending,
    )
    oldest = GaugeMetricFamily(
        "contacts_api_webhook_oldest_pending_seconds",
        "Age of the oldest of those messages (0 when there is none).",
        value=backlog.oldest_seconds,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([pending, oldest]))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self._families


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus metrics of every worker process, and the webhook backlog."""
    body = exposition() + await backlog_exposition(app_db(request))
    # Litestar appends "; charset=utf-8" to a text type itself: given prometheus-client's
    # full type, the header carried the charset twice.
    return Response(body, media_type=CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8"))
