"""A database outage reaches the dispatcher's log as one warning per poll, not a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from contacts_api.storage.engine import Database
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings

# Nothing listens on port 1: every connection attempt is refused at once.
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/test"


async def poll_twice(worker: Dispatcher) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(worker.poll_seconds * 1.5)
    stop.set()
    await running


async def dispatcher_lines(url: str) -> list[dict[str, Any]]:
    """The warning and error lines of a dispatcher polling `url` twice."""
    db = Database(url)
    try:
        with capture_logs() as logs:
            async with Dispatcher(db, make_settings(url, webhooks_poll_seconds=0.2)) as worker:
                await poll_twice(worker)
    finally:
        await db.dispose()
    return [line for line in logs if line["log_level"] in ("warning", "error")]


async def test_an_unreachable_database_is_a_warning_without_traceback() -> None:
    failures = await dispatcher_lines(UNREACHABLE)
    claims = [line for line in failures if line["event"].startswith("webhook claim")]
    assert claims  # one per poll
    for line in claims:
        assert line["log_level"] == "warning"
        assert line["event"] == "webhook claim failed: database unavailable"
        assert line["error"].startswith(("ConnectionRefusedError", "OSError"))
        assert "exc_info" not in line
    # The prune at start failed the same way, once.
    [prune] = [line for line in failures if line not in claims]
    assert prune["log_level"] == "warning"
    assert prune["event"] == "pruning webhook messages failed: database unavailable"
    assert "exc_info" not in prune


async def test_any_other_failure_keeps_its_traceback(tmp_path: Path) -> None:
    """A database that answers but was never migrated (no such table): not an outage."""
    failures = await dispatcher_lines(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    claims = [line for line in failures if line["event"].startswith("webhook claim")]
    assert claims
    for line in claims:
        assert (line["log_level"], line["event"]) == ("error", "webhook claim failed")
        assert "no such table" in str(line["exc_info"])  # the traceback is logged
