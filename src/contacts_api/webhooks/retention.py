"""How long the outbox and the delivery log keep what is finished.

A message delivered or given up (`failed`) more than CONTACTS_API_WEBHOOKS_RETENTION_DAYS
(30) ago is deleted, with its attempts; pending messages and their attempts are kept
whatever their age. Every dispatcher prunes when it starts and then once an hour, and
`contacts-api webhooks prune` does it on demand. Deletion goes by windows of the oldest
messages, each its own short transaction, so neither database holds a lock for long and
no scan goes past the first messages newer than the cutoff.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from contacts_api.storage.engine import Database
from contacts_api.webhooks import repository as repo

WINDOW = 1000  # messages looked at per transaction
EVERY = timedelta(hours=1)  # how often a running dispatcher prunes
# A dispatcher's prune waits this long between windows: the first one after an upgrade may
# have years of messages to delete, and on SQLite each window holds the one write lock that
# creates wait for.
PAUSE_SECONDS = 0.05


async def prune(
    db: Database,
    now: datetime,
    keep: timedelta,
    pause: float = 0.0,
) -> int:
    """Delete what finished before `now - keep`, `pause` seconds between windows; how many
    messages were deleted."""
    cutoff = now - keep
    deleted, after = 0, 0
    while True:
        async with db.transaction() as conn:
            count, last = await repo.prune_window(conn, cutoff, after, WINDOW)
        deleted += count
        if last is None:
            return deleted
        after = last
        if pause:
            await asyncio.sleep(pause)
