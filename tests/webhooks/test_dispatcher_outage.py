"""A database outage reaches the dispatcher's log as one warning per poll, not a traceback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from contacts_api.storage.engine import Database
from contacts_api.webhooks import dispatcher as dispatcher_module
from contacts_api.webhooks.dispatcher import Dispatcher
from tests.conftest import make_settings

# Nothing listens on port 1: every connection attempt is refused at once.
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/test"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append(("error", event, fields))

    def exception(self, event: str, **fields: Any) -> None:
        self.lines.append(("error", event, {**fields, "exc_info": True}))

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))


async def poll_twice(worker: Dispatcher) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(worker.poll_seconds * 1.5)
    stop.set()
    await running


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    found = Recorder()
    monkeypatch.setattr(dispatcher_module, "log", found)
    return found


async def test_an_unreachable_database_is_a_warning_without_traceback(
    recorder: Recorder,
) -> None:
    db = Database(UNREACHABLE)
    settings = make_settings(UNREACHABLE, webhooks_poll_seconds=0.2)
    try:
        async with Dispatcher(db, settings) as worker:
            await poll_twice(worker)
    finally:
        await db.dispose()
    failures = [line for line in recorder.lines if line[0] != "info"]
    claims = [line for line in failures if line[1].startswith("webhook claim")]
    assert claims  # one per poll
    for level, event, fields in claims:
        assert (level, event) == ("warning", "webhook claim failed: database unavailable")
        assert fields["error"].startswith(("ConnectionRefusedError", "OSError"))
        assert "exc_info" not in fields
    # The prune at start failed the same way, once.
    [(level, event, fields)] = [line for line in failures if line not in claims]
    assert (level, event) == ("warning", "pruning webhook messages failed: database unavailable")
    assert "exc_info" not in fields


async def test_any_other_failure_keeps_its_traceback(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    db = Database(url)

    async def broken_claim(limit: int) -> list[int]:
        raise RuntimeError("a bug, not an outage")

    try:
        async with Dispatcher(db, make_settings(url, webhooks_poll_seconds=0.2)) as worker:
            monkeypatch.setattr(worker, "claim", broken_claim)
            await poll_twice(worker)
    finally:
        await db.dispose()
    claims = [line for line in recorder.lines if line[1].startswith("webhook claim")]
    assert claims
    for level, event, fields in claims:
        assert (level, event) == ("error", "webhook claim failed")
        assert fields.get("exc_info")  # the traceback is logged
