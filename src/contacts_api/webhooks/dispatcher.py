"""The delivery worker: claims endpoints with due messages and sends them, oldest first.

One dispatcher runs inside each `serve` worker (unless switched off) and any number more as
`contacts-api webhooks dispatch`, on any host sharing the database. They coordinate through
leases on endpoint rows (see repository.claim_endpoints):

- A dispatcher drains an endpoint only while it holds the endpoint's lease, so two
  dispatchers never send to one endpoint at once, let alone the same attempt.
- Ordering: an endpoint's messages go out strictly oldest first, one at a time; a message
  waiting for its retry holds back every younger message of that endpoint (other endpoints
  are not affected).
- The lease is renewed after every attempt; a dispatcher that dies stops renewing, and its
  lease expires (CONTACTS_API_WEBHOOKS_LEASE_SECONDS, 30 s). The attempt it was making is still
  due, so whoever claims the endpoint next sends it again at once, not after a backoff.
- Retention: a dispatcher prunes finished messages when it starts and then hourly, in a
  task of its own (retention.py).
- Fairness: a drain lets go of its endpoint after DRAIN_SECONDS (at the end of an attempt),
  and the freed slot goes to the fairest due endpoint (repository._claimable): one account's
  slow endpoints cannot hold every slot while another account's events wait.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random as random_module
import secrets
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
import structlog

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.outage import log_failure
from contacts_api.timeutil import utcnow
from contacts_api.webhooks import delivery, retention, rotation, ssrf
from contacts_api.webhooks import repository as repo
from contacts_api.webhooks.host_clients import HostClients
from contacts_api.webhooks.signing import webhook_headers

log = structlog.get_logger(__name__)


BATCH = 50  # messages read per query while draining one endpoint
CONCURRENCY = 16  # endpoints drained at once by one dispatcher
# How long one drain may go on before its endpoint goes back in line. Measured with 16
# endpoints of one account answering in 1 s each, four messages each: another account's
# first attempt waited until they had drained to the end (3.7-3.9 s; 5.7 s in an earlier
# audit's run), and 0.7-0.8 s with this turn.
DRAIN_SECONDS = 1.0


def dispatcher_name() -> str:
    """host:pid:random, so a lease in the database says who holds it."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def pinned_request(
    client: httpx.AsyncClient,
    url: str,
    address: ssrf.IPAddress,
    headers: dict[str, str],
    body: bytes,
) -> httpx.Request:
    """A POST to the address that passed the SSRF check, with the URL's own Host and SNI."""
    original = httpx.URL(url)
    request = client.build_request(
        "POST",
        original.copy_with(host=str(address)),
        content=body,
        headers={**headers, "host": original.netloc.decode("ascii")},
    )
    if original.scheme == "https":
        request.extensions["sni_hostname"] = original.host
    return request


class Dispatcher:
    """Sends the outbox. Use `async with`, then `run(stop)` forever or `run_once()` in tests.

    `now` and `random` are injectable so tests drive retry schedules without sleeping.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        now: Callable[[], datetime] = utcnow,
        random: Callable[[], float] = random_module.random,
        name: str | None = None,
        concurrency: int = CONCURRENCY,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.db = db
        self.now = now
        self.random = random
        self.name = name or dispatcher_name()
        self.concurrency = concurrency
        self.drain_seconds = drain_seconds
        self.allow_private = settings.webhooks_allow_private
        self.timeout = settings.webhooks_timeout_seconds
        self.lease = timedelta(seconds=settings.webhooks_lease_seconds)
        self.poll_seconds = settings.webhooks_poll_seconds
        days = settings.webhooks_retention_days
        self.keep = timedelta(days=days) if days > 0 else None
        self.clients = HostClients(self._new_client)

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.clients.aclose()

    def _new_client(self) -> httpx.AsyncClient:
        """A host's client (webhooks/host_clients.py keeps one per host name)."""
        # trust_env=False: an HTTP(S)_PROXY in the environment must not reroute deliveries
        # around the SSRF check; redirects are never followed (a 3xx is a failed attempt).
        # identity: the delivery log keeps the first KiB of the answer as text; a
        # compressed body was unreadable there, and its NUL bytes made PostgreSQL refuse
        # the attempt's row (delivery.record_attempt replaces any NUL left).
        return httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"accept-encoding": "identity"},
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Poll for due endpoints until `stop` is set; each is drained by its own task.

        A drain that sent something wakes the loop when it ends, so its slot is claimed
        again at once rather than at the next poll.
        """
        log.info("webhook dispatcher started", dispatcher=self.name)
        active: dict[int, asyncio.Task[int]] = {}
        slot_freed = asyncio.Event()
        pruning: asyncio.Task[None] | None = None
        prune_at = time.monotonic()
        while not stop.is_set():
            slot_freed.clear()
            await self.clients.close_idle()
            if self.keep is not None and time.monotonic() >= prune_at:
                prune_at = time.monotonic() + retention.EVERY.total_seconds()
                if pruning is None or pruning.done():
                    pruning = asyncio.create_task(self.prune(self.keep))
            free = self.concurrency - len(active)
            if free > 0:
                try:
                    claimed = await self.claim(free)
                except Exception as exc:
                    log_failure(log, exc, "webhook claim failed")
                    claimed = []
                for endpoint_id in claimed:
                    if endpoint_id in active:
                        # Its drain let go and has not ended yet: this claim took it again,
                        # and nothing would drain it till the lease ran out (30 s).
                        await self._let_go(endpoint_id)
                        continue
                    task = asyncio.create_task(self.drain(endpoint_id, self.drain_seconds))
                    active[endpoint_id] = task
                    task.add_done_callback(
                        functools.partial(_forget, active, endpoint_id, slot_freed)
                    )
            await _first_set(stop, slot_freed, seconds=self.poll_seconds)
        leftover: list[asyncio.Task[Any]] = [*active.values(), *([pruning] if pruning else [])]
        for running in leftover:
            running.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        log.info("webhook dispatcher stopped", dispatcher=self.name)

    async def run_once(self) -> int:
        """Claim every due endpoint and drain it (with no time limit); the attempts made."""
        claimed = await self.claim(self.concurrency)
        return sum(await asyncio.gather(*(self.drain(e) for e in claimed)))

    async def prune(self, keep: timedelta) -> None:
        """Delete messages finished more than `keep` ago; a failure is one log line."""
        try:
            deleted = await retention.prune(
                self.db, self.now(), keep, pause=retention.PAUSE_SECONDS
            )
        except Exception as exc:
            log_failure(log, exc, "pruning webhook messages failed")
            return
        if deleted:
            log.info(
                "webhook messages pruned", deleted=deleted, older_than_days=keep / timedelta(days=1)
            )

    async def _head(self, endpoint_id: int) -> repo.Row | None:
        """The endpoint's oldest pending message as it is now. Since the batch was read, a
        redelivery or an enable with redeliverFailed may have queued an older one, and a
        redelivery may have changed this one (sent with the row as read, its attempt would
        not be recorded, and it would go out twice). One indexed read per message, small
        beside the POST it precedes."""
        async with self.db.read() as conn:
            head = await repo.pending_messages(conn, endpoint_id, 1)
        return head[0] if head else None

    async def _let_go(self, endpoint_id: int) -> None:
        with suppress(Exception):
            async with self.db.transaction() as conn:
                await repo.release_lease(conn, endpoint_id, self.name)

    async def claim(self, limit: int) -> list[int]:
        """Lease up to `limit` endpoints whose oldest pending message is due."""
        now = self.now()
        async with self.db.read() as conn:
            if not await repo.any_claimable(conn, now):
                return []
            candidates = await repo.fairest_due(conn, now, limit)
        async with self.db.transaction() as conn:
            return await repo.claim_endpoints(
                conn, self.name, candidates, now, now + self.lease, limit
            )

    async def drain(self, endpoint_id: int, seconds: float | None = None) -> int:
        """Send the endpoint's due messages in order, until one must wait or `seconds` have
        passed (checked after each attempt); then let go."""
        attempts = 0
        turn_ends = None if seconds is None else time.monotonic() + seconds
        try:
            while True:
                async with self.db.read() as conn:
                    endpoint = await repo.get_endpoint(conn, endpoint_id)
                    batch = await repo.pending_messages(conn, endpoint_id, BATCH)
                if endpoint is None or endpoint.lease_owner != self.name or not batch:
                    return attempts
                for index, read in enumerate(batch):
                    message = await self._head(endpoint_id) if index else read
                    if message is None or message.id != read.id:
                        break  # an older one was queued again meanwhile: read the queue afresh
                    if message.next_attempt_at > self.now():
                        return attempts
                    result = await self.attempt(endpoint, message)
                    attempts += 1
                    now = self.now()
                    try:
                        async with self.db.transaction() as conn:
                            go_on = await delivery.record_attempt(
                                conn,
                                message=message,
                                result=result,
                                owner=self.name,
                                now=now,
                                lease_until=now + self.lease,
                                random=self.random,
                            )
                    except Exception as exc:
                        # The message was sent but its state did not move: put it off by the
                        # backoff, or every poll would send it again at once.
                        log_failure(
                            log, exc, "recording a webhook attempt failed", endpoint_id=endpoint_id
                        )
                        async with self.db.transaction() as conn:
                            await delivery.postpone_unrecorded(
                                conn, message=message, result=result, now=now, random=self.random
                            )
                        return attempts
                    if not go_on:
                        return attempts
                    if turn_ends is not None and time.monotonic() >= turn_ends:
                        return attempts
        except Exception as exc:
            log_failure(log, exc, "webhook drain failed", endpoint_id=endpoint_id)
            return attempts
        finally:
            await self._let_go(endpoint_id)

    async def attempt(self, endpoint: repo.Row, message: repo.Row) -> delivery.AttemptResult:
        """One signed POST of the message; never raises for the receiver's faults."""
        started = self.now()
        body = message.payload.encode()
        headers = webhook_headers(
            rotation.signing_secrets(endpoint, started),
            message.webhook_id,
            int(started.timestamp()),
            body,
        )
        clock = time.perf_counter()
        status: int | None = None
        snippet = error = retry_after = None
        try:
            # The whole attempt, the name's lookup included, within the timeout, which is
            # shorter than the lease: a resolver that hangs (a dead nameserver takes glibc
            # 15 s and more) once let the lease lapse mid-attempt, and another dispatcher
            # sent the message again, after younger ones.
            async with asyncio.timeout(self.timeout):
                # The check runs again now (not only at subscription): DNS may have changed.
                address = await ssrf.checked_address(endpoint.url, allow_private=self.allow_private)
                async with self.clients.using(ssrf.split_url(endpoint.url)[1]) as client:
                    request = pinned_request(client, endpoint.url, address, headers, body)
                    response = await client.send(request, stream=True)
                    try:
                        status = response.status_code
                        retry_after = response.headers.get("retry-after")
                        snippet = await read_snippet(response)
                    finally:
                        await response.aclose()
        except ssrf.UnsafeUrl as exc:
            error = f"refused: {exc}"
        # InvalidURL, which is no HTTPError: a URL httpx reads otherwise than split_url did
        # (one with a leading space once) is a failed attempt, not a drain's traceback.
        except (httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = int((time.perf_counter() - clock) * 1000)
        log.debug(
            "webhook attempt",
            webhook_id=message.webhook_id,
            endpoint_id=endpoint.id,
            status=status,
            error=error,
            latency_ms=latency_ms,
        )
        return delivery.AttemptResult(started, status, latency_ms, snippet, error, retry_after)


def _forget(
    active: dict[int, asyncio.Task[int]],
    endpoint_id: int,
    slot_freed: asyncio.Event,
    task: asyncio.Task[int],
) -> None:
    active.pop(endpoint_id, None)
    # A drain that sent nothing (an error, an empty queue) does not wake the loop: waking
    # on it could spin on a failing database.
    if not task.cancelled() and task.exception() is None and task.result() > 0:
        slot_freed.set()


async def _first_set(*events: asyncio.Event, seconds: float) -> None:
    """Until one of `events` is set, or `seconds` have passed."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def read_snippet(response: httpx.Response) -> str | None:
    """The first KiB of the response body (the rest is never read)."""
    chunks = bytearray()
    with suppress(httpx.HTTPError):
        async for chunk in response.aiter_raw():
            chunks.extend(chunk)
            if len(chunks) >= delivery.SNIPPET_CHARS:
                break
    if not chunks:
        return None
    return bytes(chunks[: delivery.SNIPPET_CHARS]).decode("utf-8", errors="replace")


async def run_dispatcher(settings: Settings, stop: asyncio.Event) -> None:
    """A dispatcher with its own database engine, until `stop` is set (`webhooks dispatch`;
    `serve` runs a BackgroundDispatcher on the app's engine)."""
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        async with Dispatcher(db, settings) as dispatcher:
            await dispatcher.run(stop)
    finally:
        await db.dispose()
