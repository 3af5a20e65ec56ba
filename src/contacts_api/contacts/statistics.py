"""Keep PostgreSQL's planner statistics of `contact` in step with a table that grows fast.

Autovacuum analyzes a table once ~10 % of it changed, at most once a minute. A table that grows
from empty under a burst of creates is, to the planner, still nearly empty: it then looks the
batch's emails up by account alone and filters every contact of the account (measured: the
lookup of 25 emails at 3,000 contacts took 1.5 ms as a hash join over all of them, against
~0.1 ms by the unique index; and it grows with the account). The import refreshes them itself
(contacts/bulk_repository.py: refresh_statistics); the server does here, in the background,
each time the contacts this process created double (1,000, 2,000, 4,000...).
"""

from __future__ import annotations

import asyncio
import contextlib

import sqlalchemy.exc
import structlog

from contacts_api.contacts import bulk_repository as bulk_repo
from contacts_api.storage.engine import Database

log = structlog.get_logger(__name__)

FIRST_REFRESH_AT = 1_000


class GrowthAnalyzer:
    """Runs ANALYZE contact in the background as this process's creates grow the table."""

    def __init__(self, db: Database, first_at: int = FIRST_REFRESH_AT) -> None:
        self.db = db
        self.created = 0
        self.next_at = first_at
        self.refreshes = 0
        self._task: asyncio.Task[None] | None = None

    def created_contacts(self, count: int) -> None:
        """`count` contacts were committed; refresh when the total passed the next mark."""
        self.created += count
        if self.created < self.next_at or (self._task is not None and not self._task.done()):
            return
        self.next_at = 2 * self.created
        self._task = asyncio.get_running_loop().create_task(self._refresh(), name="analyze")

    async def _refresh(self) -> None:
        try:
            async with self.db.transaction() as conn:
                await bulk_repo.refresh_statistics(conn)
            self.refreshes += 1
        except sqlalchemy.exc.SQLAlchemyError as exc:  # the next mark tries again
            log.warning("statistics refresh failed", error=exc.__class__.__name__)

    async def wait_for_refresh(self) -> None:
        """Wait for a refresh under way, if any."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
