"""The batch writers of every worker process take turns at SQLite's write lock
(storage/writer_turn.py): a writer waits for the turn without stalling its event loop, gets
it the moment the holder lets go, and never keeps it by accident."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from contacts_api.storage import engine as engine_module
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.models import tag_table
from contacts_api.storage.writer_turn import WriterTurn
from contacts_api.timeutil import utcnow
from tests.factories import new_account
from tests.loop_ticks import LoopTicks

# Another process holding the turn: it prints "held", waits for a line on stdin (or its
# timeout), prints the time it lets go, then lets go and exits.
HOLDER = """
import fcntl, os, sys, time, select
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
print(time.time(), flush=True)
fcntl.flock(fd, fcntl.LOCK_UN)
"""

# Whether another process can take the turn now (tries for up to two seconds).
TAKER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
deadline = time.monotonic() + 2
while True:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("taken")
        break
    except BlockingIOError:
        if time.monotonic() > deadline:
            print("still held")
            break
        time.sleep(0.02)
"""


@contextmanager
def held_elsewhere(lock: Path, seconds: float = 30) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.communicate()  # reaps it and closes its pipes


def let_go(holder: subprocess.Popen[str]) -> float:
    """Tell the holder to let go; returns when it did (its clock)."""
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    return float(holder.stdout.readline())


def taken_by_another_process(lock: Path) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", TAKER, str(lock)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip() == "taken"


@pytest.fixture
def sqlite_url(database_url: str) -> str:
    if not database_url.startswith("sqlite"):
        pytest.skip("turns at SQLite's write lock; PostgreSQL writers do not take them")
    return database_url


def lock_of(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///") + "-writers.lock")


@pytest.mark.parametrize("transaction", ["batch_transaction", "transaction"])
async def test_a_writer_waits_its_turn_without_stalling_the_loop(
    sqlite_url: str, transaction: str
) -> None:
    """The group-commit batch, and a request's own transaction (PUT, DELETE, notes, bulk
    requests, the webhook dispatcher), which had polled SQLite's lock in a busy handler that,
    under a stream of batches, found it free only by chance (edits waited seconds)."""
    db = Database(sqlite_url)
    account = await new_account(db)

    async def write_a_tag() -> float:
        async with getattr(db, transaction)() as conn:
            began = time.time()
            await conn.execute(
                sa.insert(tag_table).values(
                    account_id=account.account_id, name="t", created_at=utcnow()
                )
            )
        return began

    try:
        async with LoopTicks() as ticks:
            with held_elsewhere(lock_of(sqlite_url)) as holder:
                batch = asyncio.create_task(write_a_tag())
                await asyncio.wait_for(ticks.ten_more(), 5)  # the loop runs on meanwhile...
                assert not batch.done()  # ...while the batch waits for the turn
                let_go_at = await asyncio.to_thread(let_go, holder)
                began = await asyncio.wait_for(batch, 5)
        assert began >= let_go_at
        async with db.read() as conn:
            names = (await conn.execute(sa.select(tag_table.c.name))).scalars().all()
        assert names == ["t"]
        # Given back after the batch: another process takes it at once.
        assert taken_by_another_process(lock_of(sqlite_url))
    finally:
        await db.dispose()


async def test_a_cancelled_wait_leaves_the_turn_free(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        with held_elsewhere(lock_of(sqlite_url)) as holder:
            batch = asyncio.create_task(db.batch_transaction().__aenter__())
            await asyncio.sleep(0.2)
            batch.cancel()
            with pytest.raises(asyncio.CancelledError):
                await batch
            await asyncio.to_thread(let_go, holder)
        # The waiting thread took the turn when the holder let go, and gave it back.
        assert await asyncio.to_thread(taken_by_another_process, lock_of(sqlite_url))
    finally:
        await db.dispose()


async def test_a_turn_never_handed_over_is_done_without(tmp_path: Path) -> None:
    lock = tmp_path / "db-writers.lock"
    turn = WriterTurn(str(lock))
    try:
        with held_elsewhere(lock) as holder:
            started = time.monotonic()
            async with turn.held(0.3) as have:
                assert have is False
                assert time.monotonic() - started >= 0.3
            await asyncio.to_thread(let_go, holder)
        assert await asyncio.to_thread(taken_by_another_process, lock)
        async with turn.held(0.3) as have:  # free again: taken at once
            assert have is True
            assert not await asyncio.to_thread(taken_by_another_process_at_once, lock)
    finally:
        turn.close()


async def test_a_wait_that_ran_out_is_taken_over_not_left_to_give_the_turn_away(
    tmp_path: Path,
) -> None:
    """The thread of a wait that ran out is still in flock; the next wait must use it, and
    must keep the turn for its whole block once it has it."""
    lock = tmp_path / "db-writers.lock"
    turn = WriterTurn(str(lock))
    try:
        with held_elsewhere(lock) as holder:
            async with turn.held(0.2) as have:
                assert have is False
            waiting = [t for t in threading.enumerate() if t.name == "writer-turn"]
            assert len(waiting) == 1

            async def second_wait() -> bool:
                async with turn.held(5) as have:
                    # Held throughout: nothing of the first wait gives it back meanwhile.
                    await asyncio.sleep(0.2)
                    held = not await asyncio.to_thread(taken_by_another_process_at_once, lock)
                    return have and held

            second = asyncio.create_task(second_wait())
            await asyncio.sleep(0.1)
            assert len([t for t in threading.enumerate() if t.name == "writer-turn"]) == 1
            await asyncio.to_thread(let_go, holder)
            assert await asyncio.wait_for(second, 5)
        assert await asyncio.to_thread(taken_by_another_process, lock)
    finally:
        turn.close()


def taken_by_another_process_at_once(lock: Path) -> bool:
    code = TAKER.replace("time.monotonic() + 2", "time.monotonic()")
    result = subprocess.run(
        [sys.executable, "-c", code, str(lock)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip() == "taken"


async def test_a_lock_file_that_cannot_be_opened_leaves_the_turns_out_with_one_warning(
    tmp_path: Path,
) -> None:
    turn = WriterTurn(str(tmp_path / "no such directory" / "db-writers.lock"))
    with capture_logs() as logs:
        for _ in range(3):
            async with turn.held(1) as have:
                assert have is False  # SQLite's own lock still guards the batch
    warnings = [log for log in logs if log["log_level"] == "warning"]
    assert len(warnings) == 1
    assert "writer turn lock file unusable" in warnings[0]["event"]
    turn.close()


async def test_writers_of_one_process_take_the_turn_one_at_a_time(tmp_path: Path) -> None:
    """A flock belongs to the open file: without a line of their own, two writers of one
    process both had the turn, and the first to let go gave it away under the other."""
    lock = tmp_path / "db-writers.lock"
    turn = WriterTurn(str(lock))
    second_in = asyncio.Event()

    async def second() -> bool:
        async with turn.held(5) as have:
            second_in.set()
            return have and not await asyncio.to_thread(taken_by_another_process_at_once, lock)

    try:
        async with turn.held(5) as have:
            assert have
            waiting = asyncio.create_task(second())
            await asyncio.sleep(0.2)
            assert not second_in.is_set()  # waits while the first holds it
        assert await asyncio.wait_for(waiting, 5)  # then holds it, the flock included
        assert await asyncio.to_thread(taken_by_another_process, lock)  # and gives it back
    finally:
        turn.close()


async def test_the_batch_goes_before_the_writers_waiting_and_then_lets_them_in(
    tmp_path: Path,
) -> None:
    """The group-commit batch (`first`) goes before the other writers waiting, but one that
    asks again as soon as it let go finds the next of them ahead: they alternate."""
    turn = WriterTurn(str(tmp_path / "db-writers.lock"))
    order: list[str] = []

    async def write(name: str, first: bool = False, times: int = 1) -> None:
        for _ in range(times):
            async with turn.held(5, first=first) as have:
                assert have
                order.append(name)
                await asyncio.sleep(0.02)

    try:
        async with turn.held(5):
            others = [asyncio.create_task(write(name)) for name in ("put", "note")]
            await asyncio.sleep(0.05)
            batches = asyncio.create_task(write("batch", first=True, times=3))
            await asyncio.sleep(0.05)
            assert order == []
        await asyncio.wait_for(asyncio.gather(batches, *others), 5)
        assert order == ["batch", "put", "batch", "note", "batch"]
    finally:
        turn.close()


async def test_a_request_transaction_gets_in_between_two_batches(sqlite_url: str) -> None:
    """Batches back to back (each asking for the next turn as soon as it committed) let a
    request's transaction in after the one batch under way."""
    db = Database(sqlite_url)
    account = await new_account(db)
    committed = 0
    stop = asyncio.Event()

    async def batches() -> None:
        nonlocal committed
        while not stop.is_set():
            async with db.batch_transaction() as conn:
                await conn.execute(sa.select(1))
                await asyncio.sleep(0.03)
            committed += 1

    try:
        stream = asyncio.create_task(batches())
        await asyncio.sleep(0.1)
        before = committed
        async with db.transaction() as conn:
            between = committed - before
            await conn.execute(
                sa.insert(tag_table).values(
                    account_id=account.account_id, name="edit", created_at=utcnow()
                )
            )
        stop.set()
        await asyncio.wait_for(stream, 5)
        assert between <= 1
    finally:
        await db.dispose()


async def test_a_flock_won_for_a_writer_that_gave_up_is_not_given_back_under_the_next(
    tmp_path: Path,
) -> None:
    """A wait that ran out leaves its thread in flock. When that thread gets the flock, the
    next writer must not take it "again" on the same descriptor (it would succeed) only to
    have the thread's callback, finding the first writer gone, give it back under it."""
    lock = tmp_path / "db-writers.lock"
    turn = WriterTurn(str(lock))
    try:
        with held_elsewhere(lock) as holder:
            async with turn.held(0.2) as have:
                assert have is False
            # Without letting the loop run: the thread takes the flock, and its callback
            # waits for the loop.
            let_go(holder)
            holder.wait(5)  # it let go (it says when just before)
            deadline = time.monotonic() + 5
            while flock_free(lock):
                assert time.monotonic() < deadline, "the waiting thread never took the flock"
                time.sleep(0.01)
            async with turn.held(5) as have:
                assert have
                await asyncio.sleep(0.05)  # the callback runs
                assert not flock_free(lock)
        assert await asyncio.to_thread(taken_by_another_process, lock)
    finally:
        turn.close()


def flock_free(lock: Path) -> bool:
    """Whether the flock is free now (another open file of it counts as another process)."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # and with it the flock, if taken
    return True


def test_a_wait_left_behind_by_an_ended_loop_does_not_break_the_next_loops(
    tmp_path: Path,
) -> None:
    """A Database outliving its loop (as in the tests) while its flock wait went on: the next
    loop's writers wait afresh, and get the turn once it is free."""
    lock = tmp_path / "db-writers.lock"
    turn = WriterTurn(str(lock))

    async def one(seconds: float) -> bool:
        async with turn.held(seconds) as have:
            return have

    try:
        with held_elsewhere(lock) as holder:
            assert asyncio.run(one(0.1)) is False
            assert asyncio.run(one(0.2)) is False  # raised "belongs to a different loop"
            let_go(holder)
        assert asyncio.run(one(2)) is True
        assert taken_by_another_process(lock)
    finally:
        turn.close()


async def test_a_lock_file_made_as_root_takes_the_databases_owner_and_mode(
    tmp_path: Path,
) -> None:
    """An import or `keys create` run as root on a database of the server's user made the
    lock file root's, 0600: the server could not open it and went without turns."""
    if os.geteuid() != 0:
        pytest.skip("only root makes a file another user owns")
    database = tmp_path / "contacts.db"
    url = f"sqlite:///{database}"
    migrate.upgrade(url)
    os.chown(database, 65534, 65534)
    os.chmod(database, 0o660)
    lock = tmp_path / "contacts.db-writers.lock"
    assert not lock.exists()
    db = Database(url)
    try:
        async with db.transaction() as conn:  # as a CLI command writes
            await conn.execute(sa.select(1))
    finally:
        await db.dispose()
    made = lock.stat()
    assert (made.st_uid, made.st_gid, made.st_mode & 0o777) == (65534, 65534, 0o660)


async def test_a_lock_file_there_already_is_left_as_it_is(tmp_path: Path) -> None:
    database = tmp_path / "contacts.db"
    database.write_bytes(b"")
    os.chmod(database, 0o644)
    lock = tmp_path / "contacts.db-writers.lock"
    lock.write_bytes(b"")
    os.chmod(lock, 0o600)
    turn = WriterTurn(str(lock), like=str(database))
    try:
        async with turn.held(1) as have:
            assert have
    finally:
        turn.close()
    assert lock.stat().st_mode & 0o777 == 0o600


async def test_the_turn_and_sqlites_lock_share_one_budget(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request's transaction that waited out its budget for a turn that never came gets
    only what is left for SQLite's lock (here: nothing) instead of a whole budget more: the
    turn's holder keeps the lock too, and the request waited twice as long for its 503.
    The next transaction on that connection has the whole wait again."""
    budget_ms = 1500
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", budget_ms)
    db = Database(sqlite_url)
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        async with db.transaction() as conn:  # the pool's one connection, opened
            pass
        with held_elsewhere(lock_of(sqlite_url)):
            blocker.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                async with db.transaction():
                    pass
            waited = time.monotonic() - started
            blocker.execute("ROLLBACK")
        assert budget_ms / 1000 <= waited < 2 * budget_ms / 1000 - 0.4, waited
        async with db.transaction() as conn:
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        assert timeout == budget_ms
    finally:
        blocker.close()
        await db.dispose()
