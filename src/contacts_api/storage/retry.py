"""Transactions PostgreSQL aborted to break a deadlock (or a serialization conflict), run again.

Writers here lock rows in more than one step: an upsert locks the contacts that exist, inserts
the new ones, then locks those a concurrent writer inserted first; a bulk request and a create
batch naming the same emails in another order can each hold what the other waits for.
PostgreSQL notices after `deadlock_timeout` (1 s by default) and aborts one of them (SQLSTATE
40P01); the other goes on. The aborted work, run again once the other has committed, then
succeeds: the client never sees the 500 it was. SQLite's writers run one at a time and never
deadlock.
"""

from __future__ import annotations

import asyncio
import random

import sqlalchemy as sa
import structlog

log = structlog.get_logger(__name__)

RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
ATTEMPTS = 4


class RaceLost(Exception):
    """An upsert's insert lost to a concurrent create of the same email, and that contact was
    deleted again before the upsert looked it up (PostgreSQL; a concurrency review saw 25 of
    2,247 bulk requests answer 500 so): run again, the email is free or held by another."""


def is_retryable(exc: BaseException) -> bool:
    """A transaction the database aborted to let another go on, or one that lost a race."""
    if isinstance(exc, RaceLost):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    driver = getattr(exc.orig, "driver_exception", None) or exc.orig
    return getattr(driver, "sqlstate", None) in RETRYABLE_SQLSTATES


async def before_retry(exc: BaseException, attempt: int, what: str) -> None:
    """Log the retry and wait a moment: a few ms, growing, spread so two victims part."""
    event = (
        "upsert lost a race to a deleted contact; running it again"
        if isinstance(exc, RaceLost)
        else "deadlock victim; running it again"
    )
    log.info(event, work=what, attempt=attempt, error=str(exc))
    await asyncio.sleep(random.uniform(0.001, 0.01 * attempt))  # noqa: S311 -- jitter only
