"""Redis fixed-window counters: one budget for every worker on every host.

One round trip per hit: a Lua script increments the key and gives it its expiry atomically, so
no two workers can both see the first hit, and no key outlives its window. When Redis cannot be
reached the limiter fails open (requests are served, without RateLimit headers), logs once per
outage, and retries at most once a second until Redis answers again.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from contacts_api.http.ratelimit import Decision
from contacts_api.settings import Rate

log = structlog.get_logger(__name__)

HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# A request must never wait long on the limiter: short timeouts, no client-side retries, and
# after a failure Redis is left alone for this long (requests pass unlimited meanwhile).
TIMEOUT_SECONDS = 0.5
RETRY_AFTER_FAILURE_SECONDS = 1.0


class RedisLimiter:
    """Counters in Redis under `prefix`; fails open while Redis is away."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(HIT_SCRIPT)
        self._prefix = prefix
        self._down_until = 0.0
        self._down = False

    async def hit(self, key: str, rate: Rate) -> Decision | None:
        """Count one request; None (fail open) while Redis cannot be reached."""
        if self._down and time.monotonic() < self._down_until:
            return None
        try:
            count, ttl_ms = await self._script(keys=[self._prefix + key], args=[rate.window * 1000])
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
            if not self._down:
                self._down = True
                log.error(
                    "redis unreachable: rate limits are not enforced until it returns",
                    error=f"{type(exc).__name__}: {exc}",
                )
            return None
        if self._down:
            self._down = False
            log.warning("redis reachable again: rate limits are enforced")
        now = time.time()
        return Decision.of(int(count), rate, now + int(ttl_ms) / 1000, now)

    async def ping(self) -> bool:
        """Whether Redis answers now."""
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._client.aclose()
