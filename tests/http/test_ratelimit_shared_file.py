"""The shared-file rate-limit store: one budget for every process mapping the file, exact under
concurrency, windows that end and restart, and a crowded table that still counts every hit."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

import pytest

from contacts_api.http.ratelimit import shared_file
from contacts_api.http.ratelimit.shared_file import SharedFileLimiter, create_file
from contacts_api.settings import Rate


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "limits"
    create_file(path)
    return path


async def test_two_workers_mapping_one_file_share_one_budget(table: Path) -> None:
    clock = Clock()
    first, second = SharedFileLimiter(table, clock), SharedFileLimiter(table, clock)
    rate = Rate(points=3, window=60)
    decisions = [await (first if n % 2 else second).hit("acct:1", rate) for n in range(5)]
    assert [d.allowed for d in decisions if d] == [True, True, True, False, False]
    assert [d.remaining for d in decisions if d] == [2, 1, 0, 0, 0]
    other = await second.hit("acct:2", rate)  # another key, a budget of its own
    assert other is not None and other.remaining == 2
    assert {d.reset_at for d in decisions if d} == {clock.now + 60}
    await first.close()
    await second.close()


async def test_a_window_that_ended_opens_a_new_one(table: Path) -> None:
    clock = Clock()
    limiter = SharedFileLimiter(table, clock)
    rate = Rate(points=1, window=10)
    assert (await limiter.hit("k", rate)).allowed  # type: ignore[union-attr]
    assert not (await limiter.hit("k", rate)).allowed  # type: ignore[union-attr]
    clock.now += 10
    again = await limiter.hit("k", rate)
    assert again is not None and again.allowed and again.reset_at == clock.now + 10
    await limiter.close()


async def test_a_crowded_table_gives_a_new_key_the_window_that_ends_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a hit let through uncounted: with every slot near a new key live, the key takes
    over the window ending first (that key starts afresh); ended windows are reused."""
    monkeypatch.setattr(shared_file, "SLOTS", 4)
    monkeypatch.setattr(shared_file, "MAX_PROBES", 4)
    path = tmp_path / "small"
    create_file(path)
    clock = Clock()
    limiter = SharedFileLimiter(path, clock)
    rate = Rate(points=1, window=10)
    for n in range(4):  # windows ending at +10, +11, +12, +13
        assert (await limiter.hit(f"k{n}", rate)).allowed
        clock.now += 1
    newcomer = await limiter.hit("k-new", rate)
    assert newcomer.allowed and newcomer.remaining == 0
    assert (await limiter.hit("k-new", rate)).allowed is False  # counted in its slot
    assert (await limiter.hit("k1", rate)).allowed is False  # the later windows stay
    assert (await limiter.hit("k0", rate)).allowed  # k0's window, ending first, was taken
    clock.now += 20  # every window ended: their slots serve new keys
    assert all([(await limiter.hit(f"n{n}", rate)).allowed for n in range(4)])
    await limiter.close()


async def test_each_file_places_keys_by_a_salt_of_its_own(tmp_path: Path) -> None:
    """Where a key's slot lies cannot be worked out from the key alone (a client could
    otherwise pick addresses or routes that crowd its own account's slot): the same keys,
    counted in two files, land in different slots."""
    files = [tmp_path / "a", tmp_path / "b"]
    keys = [f"rl:{account}:POST:/v1/contacts:20/1" for account in range(4)]
    for path in files:
        create_file(path)
        limiter = SharedFileLimiter(path, Clock())
        for key in keys:
            assert (await limiter.hit(key, Rate(points=5, window=60))).allowed  # type: ignore[union-attr]
        await limiter.close()
    first, second = (_used_slots(path) for path in files)
    assert len(first) == len(second) == len(keys)
    assert first != second


def _used_slots(path: Path) -> set[int]:
    """The slots of the file that hold a key."""
    slots = path.read_bytes()[16:]
    return {
        index
        for index, (held, _end, _count) in enumerate(shared_file._SLOT.iter_unpack(slots))
        if held
    }


def _hammer(path: str, hits: int, start: multiprocessing.synchronize.Event) -> int:
    async def go() -> int:
        limiter = SharedFileLimiter(path)
        allowed = 0
        for _ in range(hits):
            decision = await limiter.hit("burst", Rate(points=10_000, window=3600))
            allowed += bool(decision and decision.allowed)
        await limiter.close()
        return allowed

    start.wait()
    return asyncio.run(go())


def test_processes_hitting_at_once_lose_no_count(table: Path) -> None:
    """Four processes, 5,000 hits each on one key of 10,000 points: exactly 10,000 allowed
    (a count lost between two processes would let more through)."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(4) as pool:
            results = [pool.apply_async(_hammer, (str(table), 5_000, start)) for _ in range(4)]
            start.set()
            allowed = [r.get(timeout=60) for r in results]
    assert sum(allowed) == 10_000
