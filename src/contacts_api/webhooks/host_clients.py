"""The dispatcher's HTTP clients: one per webhook host, closed once it has been idle a while.

One client (connection pool) per host name: requests go to a pinned IP address, and pools
are keyed by address, so a shared pool could reuse a TLS connection verified for one host name
to deliver to another. Kept for good, each held its kept-alive socket (a file descriptor)
for as long as the dispatcher ran: a server whose accounts' webhooks moved around held one
per host ever delivered to (httpx closes an expired connection only when its pool is used
again). A client nobody has used for IDLE_SECONDS is closed; the next delivery to that host
makes a new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

IDLE_SECONDS = 60.0


@dataclass
class _Entry:
    client: httpx.AsyncClient
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)


class HostClients:
    """`async with clients.using(host) as client`; `close_idle()` now and then; `aclose()`."""

    def __init__(
        self,
        make: Callable[[], httpx.AsyncClient],
        *,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make = make
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def using(self, host: str) -> AsyncIterator[httpx.AsyncClient]:
        """The host's client, never closed while in use here."""
        entry = self._entries.get(host)
        if entry is None:
            entry = self._entries[host] = _Entry(self._make(), last_used=self._clock())
        entry.users += 1
        try:
            yield entry.client
        finally:
            entry.users -= 1
            entry.last_used = self._clock()

    async def close_idle(self) -> None:
        """Close the clients no delivery has used for `idle_seconds`."""
        if not self._entries:
            return
        now = self._clock()
        idle = [
            host
            for host, entry in self._entries.items()
            if entry.users == 0 and now - entry.last_used >= self._idle_seconds
        ]
        await self._close([self._entries.pop(host).client for host in idle])

    async def aclose(self) -> None:
        clients = [entry.client for entry in self._entries.values()]
        self._entries.clear()
        await self._close(clients)

    @staticmethod
    async def _close(clients: list[httpx.AsyncClient]) -> None:
        if clients:
            await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
