"""The import's and the export's progress bars, as an operator sees them on a terminal: drawn
on stderr when it is a terminal, never mixed into the data."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from contacts_api.storage.engine import Database
from tests.factories import new_account


def on_a_terminal(database_url: str, *args: str, stdout_too: bool = False) -> tuple[int, str, str]:
    """The real CLI with stderr (and, with `stdout_too`, stdout) on a pseudo-terminal: its exit
    status, what it wrote to a stdout pipe, and what the terminal showed."""
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "CONTACTS_API_DATABASE_URL": database_url,
        "TERM": "xterm",
        "COLUMNS": "120",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "contacts_api", *args],
        stdout=follower if stdout_too else subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program has ended and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    piped = ""
    if process.stdout is not None:
        with process.stdout:
            piped = process.stdout.read().decode()
    return process.wait(timeout=60), piped, shown.decode(errors="replace")


async def test_import_and_export_draw_a_progress_bar_on_a_terminal(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    leads = tmp_path / "leads.csv"
    leads.write_text("email\n" + "".join(f"lead{n}@example.com\n" for n in range(30)))

    status, summary, shown = on_a_terminal(database_url, "import", str(leads), "--account", "acme")
    assert status == 0, shown
    assert summary == "created 30, updated 0, failed 0, unchanged 0\n"
    assert "importing" in shown and "100%" in shown and "30 rows" in shown

    out = tmp_path / "out.csv"
    args = ("export", "--account", "acme")
    status, piped, shown = on_a_terminal(database_url, *args, "--output", str(out))
    assert status == 0, shown
    assert piped == ""
    assert "exporting" in shown and "100%" in shown and "30 contacts" in shown
    assert f"exported 30 contacts to {out}" in shown
    assert len(out.read_text().splitlines()) == 31

    # Exported to the terminal itself: the contacts only, no bar drawn among them.
    status, _, shown = on_a_terminal(database_url, *args, "--format", "jsonl", stdout_too=True)
    assert status == 0, shown
    assert "exporting" not in shown and "%" not in shown
    assert shown.count('"email":"lead') == 30
