"""The import's set-aside rows: grouped by contact in file order, whether few (in memory) or
many (in SQLite's temporary file)."""

from __future__ import annotations

import random

import pytest

from contacts_api.contacts import import_deferred
from contacts_api.contacts.import_deferred import DeferredRows


@pytest.mark.parametrize("rows", [5, import_deferred.FLUSH_ROWS * 3 + 7])
def test_records_come_back_grouped_by_key_in_the_order_added(rows: int) -> None:
    rnd = random.Random(rows)
    added = [
        (f"lead{rnd.randrange(rows // 3 + 1)}@x.test", f"row {n}".encode()) for n in range(rows)
    ]
    deferred = DeferredRows()
    for key, record in added:
        deferred.add(key, record)

    got = list(deferred.grouped())
    deferred.close()

    assert got == sorted(added, key=lambda pair: pair[0])  # sorted() is stable: file order
    assert deferred.count == rows


def test_many_records_leave_memory_for_the_temporary_database() -> None:
    deferred = DeferredRows()
    for n in range(import_deferred.FLUSH_ROWS * 2):
        deferred.add(f"k{n % 7}", b"x" * 100)
    assert len(deferred._pending) < import_deferred.FLUSH_ROWS
    assert deferred._db is not None
    (rows,) = deferred._db.execute("SELECT count(*) FROM deferred").fetchone()
    assert rows == import_deferred.FLUSH_ROWS * 2
    deferred.close()
