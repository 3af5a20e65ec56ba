"""Fixed-window counters in a file mapped into every worker of one `serve`: one budget across
its workers without Redis (OPERATIONS.md: one machine is `serve --workers N`).

`serve` creates the file and names it in `SHARED_FILE_ENV` before the workers start; each
worker maps it on its first hit. The file is a random salt, then a hash table of `SLOTS` slots
(key hash, window end, count), read and written under an exclusive `flock` of the file, which
also orders the writes between processes. A hit costs a keyed blake2b hash, two system calls
and a few slots read: microseconds, with no thread hop, so it runs on the event loop.

A key's slot is found by linear probing from its hash, keyed by the file's salt so that no
client can choose keys (its own address, its account's routes) that crowd one neighbourhood.
A slot is never emptied again: one whose window ended is taken over by the next new key that
passes it. So a key's live slot is never behind an empty one, and a probe stops at the first
empty slot. Should `MAX_PROBES` slots in a row all hold live windows of other keys (far beyond
the keys one machine counts within a window: one per account, route and client address), the
new key takes over the one whose window ends first: that key starts afresh (never a hit let
through uncounted).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import secrets
import struct
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from contacts_api.http.ratelimit import Decision
from contacts_api.settings import Rate

log = structlog.get_logger(__name__)

SHARED_FILE_ENV = "CONTACTS_API_SHARED_RATE_LIMIT_FILE"
_SLOT = struct.Struct("<QdQ")  # key hash (0: never used), window end (epoch s), count
_SALT_BYTES = 16  # the file's first bytes; the slots follow
SLOTS = 1 << 16  # 1.5 MiB
MAX_PROBES = 64


def _size() -> int:
    return _SALT_BYTES + SLOTS * _SLOT.size


def create_file(path: Path) -> None:
    """An empty table at `path` (every slot never used), with a salt of its own."""
    with open(path, "wb") as f:
        f.write(secrets.token_bytes(_SALT_BYTES))
        f.truncate(_size())


def _key_hash(key: str, salt: bytes) -> int:
    # The same in every worker (Python's hash() is salted per process); 0 marks an empty slot.
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "little") or 1


class SharedFileLimiter:
    """The counters of every worker sharing the file at `path`."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._path = Path(path)
        self._clock = clock
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._salt = b""
        self._warned = False

    def _open(self) -> tuple[int, mmap.mmap]:
        if self._fd is None or self._map is None:
            fd = os.open(self._path, os.O_RDWR)
            self._map = mmap.mmap(fd, _size())
            self._salt = bytes(self._map[:_SALT_BYTES])
            self._fd = fd
        return self._fd, self._map

    async def hit(self, key: str, rate: Rate) -> Decision:
        """Count one request."""
        fd, table = self._open()
        wanted = _key_hash(key, self._salt)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = self._clock()
            free, soonest, soonest_end = -1, -1, 0.0
            start = wanted % SLOTS
            for probe in range(MAX_PROBES):
                offset = _SALT_BYTES + ((start + probe) % SLOTS) * _SLOT.size
                held, end, count = _SLOT.unpack_from(table, offset)
                if held == wanted:
                    if end <= now:  # its window ended: a new one opens with this hit
                        end, count = now + rate.window, 0
                    _SLOT.pack_into(table, offset, wanted, end, count + 1)
                    return Decision.of(count + 1, rate, end, now)
                if held == 0 or end <= now:
                    if free < 0:
                        free = offset
                    if held == 0:
                        break
                elif soonest < 0 or end < soonest_end:
                    soonest, soonest_end = offset, end
            if free < 0:  # every slot near holds a live window: the one ending first goes
                free = soonest
                self._warn_crowded()
            end = now + rate.window
            _SLOT.pack_into(table, free, wanted, end, 1)
            return Decision.of(1, rate, end, now)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _warn_crowded(self) -> None:
        if not self._warned:
            self._warned = True
            log.warning("shared rate-limit table crowded: a live window was taken over")

    async def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
