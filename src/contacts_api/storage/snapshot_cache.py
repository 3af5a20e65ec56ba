"""Results computed from one SQLite snapshot, kept until the database changes.

SQLite's `PRAGMA data_version` (https://sqlite.org/pragma.html#pragma_data_version) is a
number per connection that stays fixed for the whole of a read transaction and differs once
anything has been committed to the file since, by any other connection or process: our own
writers, an import, another tool, a migration. The hot-read connection never writes, so a
result stored with the version of the snapshot it was read from is still exactly what a new
read would give while a new read's snapshot has the same version. No write path has to
remember to invalidate anything. Versions of different connections are unrelated (two fresh
ones both say 2), so a version is the connection and its number together, and Database also
clears its cache whenever it opens a new one.

Used for the unfiltered pages of GET /v1/contacts (contacts/fast_read.py): a dashboard or a
sync polling the newest page between writes gets it without reading and building 50
contacts again. Any commit anywhere in the file makes every page read anew.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
Version = tuple[object, int]  # (the connection, its data_version)


class SnapshotCache(Generic[V]):
    """Up to `max_entries` values by key, each valid for one data_version (least recently
    used dropped first)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Version, V]] = OrderedDict()

    def get(self, key: Hashable, version: Version) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0][0] is not version[0] or entry[0][1] != version[1]:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, version: Version, value: V) -> None:
        self._entries[key] = (version, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
