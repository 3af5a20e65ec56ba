"""`serve` refuses at once, in one line, what would otherwise start a server that cannot work."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from contacts_api.cli_serve import MAX_WORKERS
from contacts_api.storage import migrate
from tests.servers import free_port, serve_to_exit


def serve_env(database_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_API_")},
        "CONTACTS_API_DATABASE_URL": database_url,
        "CONTACTS_API_LOG_LEVEL": "WARNING",
    }


def test_an_empty_host_is_bad_usage(tmp_path: Path) -> None:
    """`--host "$HOST"` with HOST unset: uvicorn listened on every interface, unsaid."""
    done = serve_to_exit(serve_env(f"sqlite:///{tmp_path}/s.db"), "--host", "", "--port", "4")
    assert done.returncode == 2
    assert "Invalid value for '--host': empty: give an address" in " ".join(done.stderr.split())
    assert not (tmp_path / "s.db").exists()


def test_workers_beyond_what_can_help_are_bad_usage(tmp_path: Path) -> None:
    """100,000 forked until memory ran out, and Ctrl-C left children behind."""
    env = serve_env(f"sqlite:///{tmp_path}/s.db")
    done = serve_to_exit(env, "--workers", str(MAX_WORKERS + 1), "--port", str(free_port()))
    assert done.returncode == 2
    assert "Invalid value for '--workers'" in done.stderr
    assert not (tmp_path / "s.db").exists()


@pytest.fixture
def unwritable_database(tmp_path: Path) -> Iterator[Path]:
    """A migrated SQLite file the server may read but not write: by its mode, or, for root
    (whom modes do not stop), by the file system's immutable attribute."""
    path = tmp_path / "ro.db"
    migrate.upgrade(f"sqlite:///{path}")
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield path
        path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False).returncode:
        pytest.skip("running as root, and the file system keeps no immutable attribute here")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_database_the_server_cannot_write_is_refused(unwritable_database: Path) -> None:
    """It started, /readyz said 200, and every create was a 500."""
    env = serve_env(f"sqlite:///{unwritable_database}")
    done = serve_to_exit(env, "--port", str(free_port()))
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"error: cannot write {unwritable_database}: attempt to write a readonly database (the"
        " server needs to write the file, and its folder for SQLite's -wal and -shm files"
        " beside it)"
    )
