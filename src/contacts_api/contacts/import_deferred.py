"""The import's rows set aside until the file's end, kept on disk rather than in memory.

A contact seen on more than one row of a file is imported whole, after every other row, so
its rows meet in one batch (contacts/import_reader.py). Those rows were held in a list of
Python objects: 100,000 rows, every contact twice (two lists concatenated, say), peaked the
reader at 159 MB; 200,000 at ~640 MB for the whole import. Now 48 MB and ~205 MB. Each row
is an encoded record in a private temporary SQLite database (`sqlite3.connect("")`): SQLite
keeps ~2 MB of its pages in memory and the rest in a file it has already unlinked, so nothing
is left behind however the import ends, and reading them back grouped by contact is SQLite's
own sort, which spills to disk too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

FLUSH_ROWS = 1000


class DeferredRows:
    """Records added under a key; read back grouped by key, each key's in the order added."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, bytes]] = []
        self.count = 0

    def add(self, key: str, record: bytes) -> None:
        self._pending.append((key, record))
        self.count += 1
        if len(self._pending) >= FLUSH_ROWS:
            self._flush()

    def grouped(self) -> Iterator[tuple[str, bytes]]:
        """Every record as (key, record), by key, then in the order added."""
        if self._db is None:  # few enough never to have left memory
            yield from sorted(self._pending, key=lambda pair: pair[0])  # stable
            return
        self._flush()
        yield from self._db.execute("SELECT key, record FROM deferred ORDER BY key, rowid")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._pending.clear()

    def _flush(self) -> None:
        if self._db is None:
            self._db = sqlite3.connect("")  # private, temporary, on disk
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute("CREATE TABLE deferred (key TEXT NOT NULL, record BLOB NOT NULL)")
        self._db.executemany("INSERT INTO deferred (key, record) VALUES (?, ?)", self._pending)
        self._pending.clear()
