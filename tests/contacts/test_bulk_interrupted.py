"""An import killed mid-way keeps its committed batches, and a re-run completes the rest."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from contacts_api.cli_bulk import _interrupted
from contacts_api.storage.engine import Database
from contacts_api.storage.models import contact_table
from tests.factories import count_contacts, new_account

ROWS = 60_000  # twelve batches of 5,000: enough to be killed between commits


async def distinct_emails(db: Database) -> int:
    query = sa.select(sa.func.count(sa.distinct(contact_table.c.email_key)))
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_sigkill_then_rerun_imports_every_row_once(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    leads = tmp_path / "leads.csv"
    with leads.open("w") as out:
        out.write("email,firstName,utm\n")
        for i in range(ROWS):
            out.write(f"lead{i}@example.com,Lead,utm_source=fair\n")
    command = [sys.executable, "-m", "contacts_api", "import", str(leads), "--account", "acme"]
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": database_url}

    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as first:
        deadline = time.monotonic() + 120
        while await count_contacts(db) == 0 and time.monotonic() < deadline:
            assert first.poll() is None, "the import finished before it could be interrupted"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    committed = await count_contacts(db)
    assert 0 < committed < ROWS  # whole batches survived the kill; the rest did not land
    assert committed % 5000 == 0

    rerun = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert await count_contacts(db) == ROWS
    assert await distinct_emails(db) == ROWS
    assert rerun.stdout.startswith(f"created {ROWS - committed}, updated 0, failed 0")


async def test_ctrl_c_says_where_the_import_stands(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """Ctrl-C ended the import with status 130 and not a word: how far it got, and that a
    re-run finishes it, were left to guess."""
    await new_account(db)
    leads = tmp_path / "leads.csv"
    leads.write_text("email\n" + "".join(f"lead{i}@example.com\n" for i in range(ROWS)))
    command = [sys.executable, "-m", "contacts_api", "import", str(leads), "--account", "acme"]
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": database_url}
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as first:
        deadline = time.monotonic() + 120
        # Two batches in: the first one's rows are surely counted (a Ctrl-C landing just as a
        # commit returns may leave that batch out of the line, never more).
        while await count_contacts(db) < 10_000 and time.monotonic() < deadline:
            assert first.poll() is None, "the import finished before it could be interrupted"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=60)
    assert (first.returncode, stdout) == (130, "")
    said = re.fullmatch(
        r"interrupted after ([0-9,]+) rows in committed batches \(one committing as it stopped"
        r" may be in too\); run the same import again to finish \(it finds those rows"
        r" unchanged\)\n",
        stderr,
    )
    assert said, stderr
    rows = int(said.group(1).replace(",", ""))
    assert rows > 0 and rows % 5000 == 0
    assert rows <= await count_contacts(db) < ROWS


@pytest.mark.parametrize(
    ("rows", "mode", "advice"),
    [
        (0, "upsert", "interrupted before its first batch was committed: nothing was imported"),
        (5000, "upsert", "run the same import again to finish (it finds those rows unchanged)"),
        (5000, "reject", "run the same import again to finish (those rows then fail as existing)"),
        (5000, "allow", "would import those rows twice (CONTACTS_API_DUPLICATE_EMAIL=allow)"),
    ],
)
def test_the_advice_after_ctrl_c_is_the_modes(rows: int, mode: str, advice: str) -> None:
    """'Run it again, it finds those rows unchanged' was said in every mode: under `allow` a
    re-run imports them twice, under `reject` they fail; with no batch in, nothing is."""
    said = _interrupted(rows, mode)
    assert advice in said
    assert ("5,000 rows" in said) == (rows == 5000)
