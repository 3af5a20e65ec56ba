"""Fixed-window rate limiting: the Decision every store returns, and how it is told to a client.

Three stores share one interface: `memory.MemoryLimiter` (one process),
`shared_file.SharedFileLimiter` (the workers of one `serve --workers N`, without Redis) and
`redis.RedisLimiter` (every worker on every host shares one budget). A window opens at the
first hit on a key and lasts `rate.window` seconds; its key names the rate too, so changing an
account's limit starts a fresh window.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from contacts_api.settings import Rate
from contacts_api.timeutil import format_time


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit: allowed or not, and what is left of the window."""

    allowed: bool
    rate: Rate
    remaining: int
    reset_at: float  # epoch seconds when the window ends
    retry_after: int  # whole seconds until then, rounded up, at least 1

    @classmethod
    def of(cls, count: int, rate: Rate, reset_at: float, now: float) -> Decision:
        return cls(
            allowed=count <= rate.points,
            rate=rate,
            remaining=max(rate.points - count, 0),
            reset_at=reset_at,
            retry_after=max(math.ceil(reset_at - now), 1),
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The RateLimit-* headers every /v1 response carries (API.md §3)."""
        return [
            (b"ratelimit-limit", str(self.rate.points).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            # Rounded up: a client that waits until the instant named must find the window
            # over (rounded down, it was up to 1 ms early and met a 429 and a whole second).
            (b"ratelimit-reset", _reset_header(math.ceil(self.reset_at * 1000))),
        ]


@functools.lru_cache(maxsize=256)
def _reset_header(reset_ms: int) -> bytes:
    """A window's end, as the header gives it. Every hit of a window shares it (give or take a
    millisecond of the clock), so it is formatted once, not on every request."""
    return (format_time(datetime.fromtimestamp(reset_ms / 1000, UTC)) or "").encode()


class Limiter(Protocol):
    """A fixed-window counter store."""

    async def hit(self, key: str, rate: Rate) -> Decision | None:
        """Count one request against `key`; None when the store cannot tell (fail open)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def limiter_for(redis_url: str | None, prefix: str) -> Limiter:
    """Redis when configured (shared by every process); else the file `serve` shares between
    its workers, when it made one; else in-process counters."""
    if redis_url:
        from contacts_api.http.ratelimit.redis import RedisLimiter

        return RedisLimiter(redis_url, prefix)
    from contacts_api.http.ratelimit.shared_file import SHARED_FILE_ENV, SharedFileLimiter

    if path := os.environ.get(SHARED_FILE_ENV):
        return SharedFileLimiter(path)
    from contacts_api.http.ratelimit.memory import MemoryLimiter

    return MemoryLimiter()
