"""Idempotency-Key: the first answer is kept per account + key for 24 h and replayed after.

Framework-free: the HTTP middleware (http/idempotency.py) calls these with the request's
fingerprint and the response it captured.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from contacts_api.errors import Conflict, Unprocessable
from contacts_api.idempotency import repository as repo
from contacts_api.storage.engine import Database

RETENTION = timedelta(hours=24)
# A claim with no answer after this long belongs to a request that died (crash, kill):
# the key becomes usable again instead of answering 409 for a day.
STALE_CLAIM = timedelta(minutes=2)
# Housekeeping of other keys' dead records runs at most this often per process; while each
# run finds a full batch, again after PURGE_CATCH_UP_SECONDS. A batch a minute was a ceiling:
# past ~17 keyed requests a second, records expired faster than they went, for good.
PURGE_EVERY_SECONDS = 60.0
PURGE_CATCH_UP_SECONDS = 1.0
PURGE_BATCH = 1000
IN_PROGRESS = "A request with this Idempotency-Key is still in progress"
DIFFERENT_REQUEST = "This Idempotency-Key was already used with a different request"


@dataclass(frozen=True, slots=True)
class Claim:
    """This request runs; its answer is to be stored under `record_id`."""

    record_id: int


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first request's answer, to be replayed byte for byte."""

    status: int
    headers: list[list[str]]
    body: bytes


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """What makes two requests "the same": method, path, query string and body bytes."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def claim(
    db: Database, account_id: int, key: str, request_fingerprint: str, now: datetime
) -> Claim | StoredResponse:
    """Claim the key for this request, or the stored answer; 409 while running, 422 if different."""
    await _purge_now_and_then(db, now)
    async with db.transaction() as conn:
        await repo.delete_dead_key(
            conn, account_id, key, expired_before=now, stale_before=now - STALE_CLAIM
        )
        record_id = await repo.try_claim(
            conn,
            account_id=account_id,
            key=key,
            fingerprint=request_fingerprint,
            now=now,
            expires_at=now + RETENTION,
        )
        if record_id is not None:
            return Claim(record_id)
        row = await repo.find(conn, account_id, key)
    if row is None:  # purged between our insert and read: only a clock jump does that
        raise Conflict(IN_PROGRESS)
    if row.fingerprint != request_fingerprint:
        raise Unprocessable(DIFFERENT_REQUEST)
    if row.response_status is None:
        raise Conflict(IN_PROGRESS)
    return StoredResponse(row.response_status, list(row.response_headers or []), row.response_body)


_last_purge = float("-inf")


async def _purge_now_and_then(db: Database, now: datetime) -> None:
    """Drop a batch of dead records, in its own short transaction, once a minute (once a
    second while there are more)."""
    global _last_purge
    if time.monotonic() - _last_purge < PURGE_EVERY_SECONDS:
        return
    _last_purge = time.monotonic()
    async with db.transaction() as conn:
        purged = await repo.purge_dead(
            conn, expired_before=now, stale_before=now - STALE_CLAIM, limit=PURGE_BATCH
        )
    if purged >= PURGE_BATCH:  # behind: the next batch soon
        _last_purge -= PURGE_EVERY_SECONDS - PURGE_CATCH_UP_SECONDS


async def complete(db: Database, claimed: Claim, response: StoredResponse) -> None:
    """Keep the answer for replays."""
    async with db.transaction() as conn:
        await repo.store_response(
            conn, claimed.record_id, response.status, response.headers, response.body
        )


async def release(db: Database, claimed: Claim) -> None:
    """Forget the claim (the request failed transiently): a retry runs again."""
    async with db.transaction() as conn:
        await repo.delete(conn, claimed.record_id)
