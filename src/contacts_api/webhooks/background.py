"""The dispatcher as a background task of a `serve` worker, started and stopped with the app."""

from __future__ import annotations

import asyncio
from contextlib import suppress

import structlog

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher

log = structlog.get_logger(__name__)
STOP_GRACE_SECONDS = 5.0


class BackgroundDispatcher:
    """Runs a Dispatcher on the app's own database engine while the app is up."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def _run(self) -> None:
        try:
            async with Dispatcher(self.db, self.settings) as dispatcher:
                await dispatcher.run(self._stop)
        except Exception:
            log.exception("webhook dispatcher crashed")

    async def stop(self) -> None:
        """Ask the loop to stop, wait briefly, then cancel (leases left behind expire)."""
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE_SECONDS)
        except TimeoutError:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._task = None
