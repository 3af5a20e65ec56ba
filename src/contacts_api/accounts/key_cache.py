"""Recently verified API keys, so the hot path skips a database read on most requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from contacts_api.accounts.schemas import Principal
from contacts_api.accounts.service import INVALID_KEY, KeyRecord, key_digest, key_record
from contacts_api.errors import Unauthorized
from contacts_api.singleflight import SingleFlight
from contacts_api.storage.engine import Database

MAX_ENTRIES = 10_000


class KeyCache:
    """Per-process cache of key hash -> KeyRecord. Expiry is checked on every request;
    revocation takes effect within `ttl_s` (CONTACTS_API_KEY_CACHE_SECONDS). Unknown keys are
    never cached."""

    def __init__(
        self,
        db: Database,
        ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[str, tuple[float, KeyRecord]] = {}
        self._loads: SingleFlight[str, KeyRecord | None] = SingleFlight(ttl_s, clock)

    async def principal_for(self, key: str, now: datetime) -> Principal:
        """The principal behind `key` at `now`, or Unauthorized with iClosed's message."""
        digest = key_digest(key)
        entry = self._entries.get(digest)
        if entry is not None and self.clock() - entry[0] <= self.ttl_s:
            return entry[1].check(now)
        # The requests in flight when the entry expires share one read; each raises its own
        # Unauthorized when the key turned out invalid.
        record = await self._loads.run(digest, lambda: self._load(digest))
        if record is None:
            raise Unauthorized(INVALID_KEY)
        return record.check(now)

    async def _load(self, digest: str) -> KeyRecord | None:
        # Trusted from when the read began: a revocation it may have missed counts from then.
        read_at = self.clock()
        try:
            async with self.db.read() as conn:
                record = await key_record(conn, digest)
        except Unauthorized:
            return None  # unknown or revoked: never cached
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (read_at, record)
        return record
