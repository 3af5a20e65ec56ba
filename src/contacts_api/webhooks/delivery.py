"""What one attempt's result means: delivered, retry later, give up, or disable the endpoint.

The rules, applied in the dispatcher's transaction after each HTTP attempt:
- 2xx: the message is delivered; the endpoint's failure streak ends.
- 410 Gone: the endpoint is disabled at once and its pending messages fail.
- anything else (other status, timeout, refused address, connection error): retry after the
  backoff or the receiver's `Retry-After`; once the endpoint has failed without a single
  success for 24 hours it is disabled; a message whose own 24 hours ran out fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.webhooks import repository as repo
from contacts_api.webhooks.retry import RETRY_WINDOW, backoff, next_delay

SNIPPET_CHARS = 1024
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What came back from one HTTP attempt (status None: no HTTP answer, see `error`)."""

    started_at: datetime
    status_code: int | None
    latency_ms: int
    snippet: str | None = None
    error: str | None = None
    retry_after: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _disable(
    conn: AsyncConnection, endpoint_id: int, owner: str, reason: str, now: datetime
) -> None:
    await repo.update_if_leased(
        conn,
        endpoint_id,
        owner,
        {
            "disabled_at": now,
            "disabled_reason": reason,
            "lease_owner": None,
            "lease_expires_at": None,
        },
    )
    await repo.fail_pending_messages(conn, endpoint_id, now)
    log.warning("webhook disabled", endpoint_id=endpoint_id, reason=reason)


def _attempt_row(
    message: repo.Row,
    result: AttemptResult,
    snippet: str | None,
    error: str | None,
    outcome: str,
) -> dict[str, Any]:
    """One row of the delivery log."""
    return {
        "account_id": message.account_id,
        "endpoint_id": message.endpoint_id,
        "message_id": message.id,
        "attempted_at": result.started_at,
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "response_snippet": snippet,
        "error": error,
        "outcome": outcome,
    }


async def record_attempt(
    conn: AsyncConnection,
    *,
    message: repo.Row,
    result: AttemptResult,
    owner: str,
    now: datetime,
    lease_until: datetime,
    random: Callable[[], float],
) -> bool:
    """Log the attempt and move the message on; True when the endpoint's next may go now.

    Only the holder of the endpoint's lease changes state: a dispatcher that lost its lease
    (it stalled past the expiry) still logs what it saw, then steps aside. A message redelivered
    while this attempt was on its way keeps the redelivery (it is sent again).
    """
    endpoint = await repo.get_endpoint(conn, message.endpoint_id)
    if endpoint is None:  # unsubscribed meanwhile: message and log are gone with it
        return False
    first_attempt_at = message.first_attempt_at or result.started_at
    streak_start: datetime = endpoint.failing_since or result.started_at
    failing_since = None if result.delivered else streak_start
    if result.delivered:
        outcome = "delivered"
    elif result.status_code == 410 or now - streak_start >= RETRY_WINDOW:
        outcome = "disabled"
    elif now - first_attempt_at >= RETRY_WINDOW:
        outcome = "failed"
    else:
        outcome = "retrying"
    # No NUL: PostgreSQL's text cannot hold one, and the attempt's row was refused, the send
    # postponed and repeated for ever (a receiver may answer with any bytes).
    snippet = _storable(result.snippet[:SNIPPET_CHARS]) if result.snippet else None
    error = _storable(result.error[:500]) if result.error else None
    await repo.insert_attempt(conn, _attempt_row(message, result, snippet, error, outcome))
    held = await repo.update_if_leased(
        conn,
        endpoint.id,
        owner,
        {"failing_since": failing_since, "lease_expires_at": lease_until},
    )
    if not held:
        return False
    progress = {"attempt_count": message.attempt_count + 1, "first_attempt_at": first_attempt_at}
    if outcome == "retrying":
        delay = next_delay(message.attempt_count + 1, result.retry_after, now, random)
        await repo.update_sent_message(conn, message, {**progress, "next_attempt_at": now + delay})
        return False
    status = repo.DELIVERED if outcome == "delivered" else repo.FAILED
    await repo.update_sent_message(
        conn, message, {**progress, "status": status, "completed_at": now}
    )
    if outcome == "disabled":
        reason = "answered 410 Gone" if result.status_code == 410 else "failing for 24 hours"
        await _disable(conn, endpoint.id, owner, reason, now)
        return False
    return True


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


async def postpone_unrecorded(
    conn: AsyncConnection,
    *,
    message: repo.Row,
    result: AttemptResult,
    now: datetime,
    random: Callable[[], float],
) -> None:
    """Fallback when `record_attempt` failed after a send: log a bare failed attempt and put
    the message off by the backoff, so it is not sent again at every poll."""
    error = "the attempt could not be recorded"
    await repo.insert_attempt(conn, _attempt_row(message, result, None, error, "retrying"))
    await repo.update_sent_message(
        conn,
        message,
        {
            "attempt_count": message.attempt_count + 1,
            "first_attempt_at": message.first_attempt_at or result.started_at,
            "next_attempt_at": now + backoff(message.attempt_count + 1, random),
        },
    )
