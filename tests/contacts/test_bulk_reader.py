"""The import's reader process: what it shapes is stored exactly as a create stores it, and
however the import ends (done, a reader failure, cancellation, Ctrl-C) the process is gone."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from contacts_api.accounts.schemas import Principal
from contacts_api.bulk_jobs import import_file
from contacts_api.contacts import bulk_files, import_pipe, service
from contacts_api.errors import UserError
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table, tag_table
from contacts_api.timeutil import utcnow
from tests.factories import count_contacts, new_account, new_event

BODIES: list[dict[str, Any]] = [
    {
        "email": "Zoe.Unicode@Example.com",
        "firstName": 'Zoë "Q", comma 🎉',
        "lastName": "Back\\slash\ttab",
        "phoneNumber": "+15551234567",
        "status": "QUALIFIED",
        "tag": "vip 🎉",
        "joinedTime": "2024-02-29T23:59:59.123456789Z",
        "eventName": "Product Demo",
        "utm": "utm_source=news%20letter&utm_medium=e%E2%9C%93&ref=a&ref=b&gclid=x",
        "country": "DE",
        "timeZone": "Europe/Berlin",
        "ipAddress": "2001:db8::1",
        "referrerUrl": "https://example.com/p?utm_campaign=spring&x=1",
    },
    {
        "phoneNumber": "+15550000001",
        "firstName": "Line\nbreak 😀",
        "joinedTime": "2024-01-15T10:00Z",
    },
    {"email": "minimal@example.com", "joinedTime": "0999-01-01T00:00Z"},
    {
        "email": "eventid@example.com",
        "linkPrefix": "acme/demo",
        "tag": "vip 🎉",
        "joinedTime": "2024-01-15T10:00:00Z",
    },
]
SKIPPED = ("id", "account_id", "user_id", "preview_id", "tag_id", "created_at", "updated_at")
COMPARED = [c.name for c in contact_table.columns if c.name not in SKIPPED]


async def stored(db: Database, account_id: int) -> list[dict[str, Any]]:
    """The account's contacts as the database holds them (raw text on SQLite), in order."""
    columns = ", ".join(f"contact.{c}" for c in COMPARED if c != "event_id")
    async with db.read() as conn:
        if conn.dialect.name == "sqlite":
            extra = (
                "length(contact.created_at), typeof(contact.joined_time),"
                " typeof(contact.tracking), typeof(contact.blocked_by_recaptcha)"
            )
            where = "contact.account_id = ?"
        else:
            extra = "CAST(EXTRACT(MICROSECONDS FROM contact.created_at) AS INTEGER) % 1000 = 0"
            where = "contact.account_id = $1"
        result = await conn.exec_driver_sql(
            f"SELECT {columns}, contact.event_id IS NOT NULL AS has_event,"
            f" tag.name AS tag_name, {extra}"
            f" FROM contact LEFT JOIN tag ON tag.id = contact.tag_id WHERE {where}",
            (account_id,),
        )
        rows = [dict(r._mapping) for r in result]
    for row in rows:
        # The same object; the create path's encoder spaces and escapes it differently.
        if isinstance(row["tracking"], str):
            row["tracking"] = json.loads(row["tracking"])
    return sorted(rows, key=lambda r: str(r["email"]) + str(r["phone_number"]))


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
async def test_imported_contacts_are_stored_exactly_as_created_ones(
    db: Database, tmp_path: Path, file_format: str
) -> None:
    created = await new_account(db, "api", "o@api.test")
    imported = await new_account(db, "file", "o@file.test")
    for account in (created, imported):
        await new_event(db, account, "Product Demo", f"{account.name}/demo")
    bodies = [
        {k: (v.replace("acme/", "api/") if k == "linkPrefix" else v) for k, v in b.items()}
        for b in BODIES
    ]
    principal = Principal(created.account_id, created.user_id, 0)
    for body in bodies:
        async with db.transaction() as conn:
            data = service.parse_contact_create(body)
            await service.create_contact(
                conn, principal, data, duplicate_email="upsert", now=utcnow()
            )
    file_bodies = [
        {k: (v.replace("acme/", "file/") if k == "linkPrefix" else v) for k, v in b.items()}
        for b in BODIES
    ]
    path = tmp_path / f"leads.{file_format}"
    if file_format == "jsonl":
        path.write_text("".join(json.dumps(b) + "\n" for b in file_bodies), encoding="utf-8")
    else:
        keys = sorted({k for b in file_bodies for k in b})
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(file_bodies)
    summary = await import_file(db, path, imported.name)
    assert (summary.created, summary.failed) == (len(BODIES), 0)

    assert await stored(db, imported.account_id) == await stored(db, created.account_id)


async def _import_with_reader(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader_module: str
) -> tuple[str, list[asyncio.subprocess.Process], int]:
    """Import a one-row file with `reader_module` as the reader: (the UserError's message,
    the processes started, the contacts stored)."""
    account = await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text("email\na@example.com\n")
    processes = _record_processes(monkeypatch)
    monkeypatch.setattr(import_pipe, "READER_MODULE", reader_module)
    with pytest.raises(UserError) as failure:
        await asyncio.wait_for(import_file(db, path, account.name), timeout=30)
    return str(failure.value), processes, await count_contacts(db, account.account_id)


async def test_a_reader_that_finished_is_let_exit_not_killed(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killing a reader that is already exiting raced asyncio's own reaping of it: now and
    then the import printed `Unknown child process pid …` from asyncio. After its last
    message the reader ends by itself, with status 0, however long its exit takes."""
    account = await new_account(db)
    path = tmp_path / "leads.jsonl"
    path.write_text('{"email": "a@example.com"}\n{"email": "not an email"}\n')
    processes = _record_processes(monkeypatch, count_kills=True)
    monkeypatch.setattr(import_pipe, "READER_MODULE", "tests.contacts.lingering_reader")
    summary = await import_file(db, path, account.name)
    assert (summary.created, summary.failed) == (1, 1)
    _assert_reaped(processes)
    assert processes[0].returncode == 0
    assert processes[0].kills == 0  # type: ignore[attr-defined]


async def test_a_reader_that_never_exits_after_its_last_message_is_ended(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text("email\na@example.com\n")
    processes = _record_processes(monkeypatch, count_kills=True)
    monkeypatch.setattr(import_pipe, "READER_MODULE", "tests.contacts.lingering_reader")
    monkeypatch.setattr(import_pipe, "READER_EXIT_SECONDS", 0.1)  # it lingers 0.5 s
    summary = await import_file(db, path, account.name)
    assert summary.created == 1
    _assert_reaped(processes)
    assert processes[0].kills == 1  # type: ignore[attr-defined]


async def test_reader_that_cannot_start_is_one_clear_error_and_is_reaped(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message, processes, _ = await _import_with_reader(
        db, tmp_path, monkeypatch, "contacts_api.no_such_module"
    )
    assert message.startswith("the import's reader process stopped unexpectedly (exit status 1)")
    assert "No module named" in message and "\n" not in message
    assert "Traceback" not in message
    _assert_reaped(processes)


async def test_an_unreadable_frame_is_one_clear_error_and_the_reader_is_ended(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that sends garbage and keeps writing never exits by itself: the import must
    end it instead of waiting for it (it used to hang there)."""
    message, processes, stored = await _import_with_reader(
        db, tmp_path, monkeypatch, "tests.contacts.garbled_reader"
    )
    assert message == "the import's reader process sent an unreadable frame"
    assert stored == 0
    _assert_reaped(processes)


async def test_bad_bytes_past_the_sample_are_reported_by_the_reader(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await new_account(db)
    path = tmp_path / "leads.csv"
    rows = "".join(f"lead{i}@example.com\n" for i in range(12_000))  # past the 64 KiB sample
    path.write_bytes(b"email\n" + rows.encode() + b"bad\xff@example.com\n")
    processes = _record_processes(monkeypatch)
    with pytest.raises(UserError, match=r"^cannot read .*leads\.csv: not UTF-8 text \(") as error:
        await import_file(db, path, account.name, batch_size=5000)
    bad_at = len(b"email\n" + rows.encode() + b"bad") + 1
    assert str(error.value).endswith(
        f"(invalid start byte at line 12,002, byte {bad_at:,}); save it as UTF-8"
    )
    _assert_reaped(processes)
    assert await count_contacts(db) == 0  # found by the first pass over the file (repeated keys)


async def test_bad_bytes_far_into_the_file_refuse_it_whole_under_allow(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under CONTACTS_API_DUPLICATE_EMAIL=allow there is no pass over the file for repeated
    emails; the import still refuses it before writing its first batch."""
    account = await new_account(db)
    path = tmp_path / "leads.csv"
    rows = "".join(f"lead{i}@example.com\n" for i in range(12_000))
    path.write_bytes(b"email\n" + rows.encode() + b"bad\xff@example.com\n")
    processes = _record_processes(monkeypatch)
    with pytest.raises(UserError, match=r"^cannot read .*leads\.csv: not UTF-8 text \(") as error:
        await import_file(db, path, account.name, duplicate_email="allow", batch_size=1000)
    assert "at line 12,002" in str(error.value)
    _assert_reaped(processes)
    assert await count_contacts(db) == 0


def test_the_first_bad_byte_is_found_past_a_character_cut_by_a_piece(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    start = b"a" * ((1 << 20) - 1) + "é".encode()  # é's two bytes: the 1 MiB piece ends inside
    path.write_bytes(start + b"\nok\n\xff\n")
    assert bulk_files.first_bad_utf8(str(path)) == (3, len(start) + 5)
    path.write_bytes(start[:-1])  # a character cut by the file's end
    assert bulk_files.first_bad_utf8(str(path)) == (1, len(start) - 1)  # é's first byte


async def test_cancelled_import_keeps_committed_batches_and_reaps_the_reader(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text("email\n" + "".join(f"lead{i}@example.com\n" for i in range(30_000)))
    processes = _record_processes(monkeypatch)
    first_batch = asyncio.Event()
    task = asyncio.create_task(
        import_file(
            db, path, account.name, batch_size=1000, on_progress=lambda *_: first_batch.set()
        )
    )
    await asyncio.wait_for(first_batch.wait(), 60)
    task.cancel()  # what Ctrl-C does to `contacts-api import` (asyncio.run cancels its task)
    with pytest.raises(asyncio.CancelledError):
        await task
    _assert_reaped(processes)
    committed = await count_contacts(db)
    assert 0 < committed < 30_000 and committed % 1000 == 0

    again = await import_file(db, path, account.name, batch_size=1000)
    assert (again.created, again.unchanged) == (30_000 - committed, committed)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_ctrl_c_stops_the_cli_cleanly_and_leaves_no_process(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    path = tmp_path / "ctrl-c-leads.csv"
    path.write_text("email,tag\n" + "".join(f"l{i}@example.com,t\n" for i in range(200_000)))
    command = [sys.executable, "-m", "contacts_api", "import", str(path), "--account", "acme"]
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": database_url}
    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background by a shell without job control inherits SIGINT
        # ignored (POSIX), and so would the CLI, which then finished the import: Ctrl-C as
        # a terminal sends it needs the default disposition.
        preexec_fn=_default_sigint,
    ) as cli:
        deadline = time.monotonic() + 120
        while await count_contacts(db) == 0 and time.monotonic() < deadline:
            assert cli.poll() is None, cli.communicate()
            await asyncio.sleep(0.05)
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
    assert cli.returncode != 0
    assert "Traceback" not in err, err
    assert out == ""
    assert not _readers_of(path), "the reader process outlived the CLI"
    assert (await count_contacts(db)) % 5000 == 0
    async with db.read() as conn:
        tags = (await conn.execute(sa.select(sa.func.count()).select_from(tag_table))).scalar()
    assert tags == 1


async def test_sigkill_of_the_cli_takes_the_reader_with_it(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    path = tmp_path / "killed-leads.csv"
    path.write_text("email\n" + "".join(f"k{i}@example.com\n" for i in range(200_000)))
    command = [sys.executable, "-m", "contacts_api", "import", str(path), "--account", "acme"]
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": database_url}
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) as cli:
        deadline = time.monotonic() + 60
        while not _readers_of(path) and time.monotonic() < deadline:
            assert cli.poll() is None
            await asyncio.sleep(0.01)
        cli.kill()  # e.g. during the reader's first pass over the file: nothing to write to yet
    # Orphaned, its reaping is up to whatever adopts it (init): only a live one would be ours.
    deadline = time.monotonic() + 10
    while _readers_of(path, zombies=False) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not _readers_of(path, zombies=False), "the reader outlived its killed parent"


def _record_processes(
    monkeypatch: pytest.MonkeyPatch, *, count_kills: bool = False
) -> list[asyncio.subprocess.Process]:
    """The processes asyncio starts; with `count_kills`, each counts the kills it was sent
    (`.kills`)."""
    started: list[asyncio.subprocess.Process] = []
    original = asyncio.create_subprocess_exec

    async def recording(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await original(*args, **kwargs)
        started.append(process)
        if count_kills:
            kill = process.kill
            process.kills = 0  # type: ignore[attr-defined]

            def counted() -> None:
                process.kills += 1  # type: ignore[attr-defined]
                kill()

            process.kill = counted  # type: ignore[method-assign]
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording)
    return started


def _assert_reaped(processes: list[asyncio.subprocess.Process]) -> None:
    assert len(processes) == 1
    assert processes[0].returncode is not None
    with pytest.raises(ProcessLookupError):  # a zombie would still answer signal 0
        os.kill(processes[0].pid, 0)


def _readers_of(path: Path, *, zombies: bool = True) -> list[int]:
    """Processes whose command line names the reader module and this file (a zombie still
    has one: it is a process its parent has not reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        ours = import_pipe.READER_MODULE in cmdline and str(path) in cmdline
        if ours and (zombies or state != "Z"):
            found.append(int(entry.name))
    return found
