"""SingleFlight: callers share a running load, but never one older than max_age."""

from __future__ import annotations

import asyncio

from contacts_api.singleflight import SingleFlight


async def test_a_load_older_than_max_age_is_not_joined() -> None:
    now = [100.0]
    flight: SingleFlight[str, str] = SingleFlight(max_age=2.0, clock=lambda: now[0])
    stuck = asyncio.Event()  # never set: a load hung on a dead connection
    started: list[str] = []

    async def hangs() -> str:
        started.append("hangs")
        await stuck.wait()
        return "never"

    async def answers() -> str:
        started.append("answers")
        return "fresh"

    first = asyncio.ensure_future(flight.run("key", hangs))
    joined = asyncio.ensure_future(flight.run("key", answers))  # within max_age: joins
    for _ in range(3):  # the callers' tasks, then the load's own task, get to run
        await asyncio.sleep(0)
    assert started == ["hangs"]
    now[0] += 2.5
    assert await asyncio.wait_for(flight.run("key", answers), 5) == "fresh"
    assert started == ["hangs", "answers"]
    assert not first.done() and not joined.done()
    first.cancel()
    joined.cancel()
    await asyncio.gather(first, joined, return_exceptions=True)
