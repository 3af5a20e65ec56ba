"""Real server processes for tests: `contacts-api serve` on a free port, and free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `check()` until it is true (a readiness wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # noqa: S110 - not up yet (refused, reset...): poll again
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def serve(
    env: dict[str, str], *, workers: int = 1, log: Path, ready_path: str = "/healthz"
) -> Iterator[str]:
    """Run `contacts-api serve` with these CONTACTS_API_* settings; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "contacts_api", "serve", "--port", str(port)]
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_API_")},
        "CONTACTS_API_LOG_FORMAT": "json",
        **env,
    }
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(
                lambda: (
                    process.poll() is not None
                    or httpx.get(base + ready_path, timeout=2).status_code == 200
                ),
                what=f"server on {base}",
            )
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{log.read_text()}")
            yield base
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class KeyedServer:
    """A server on a SQLite database of its own, and a key of an account in it."""

    base: str
    host: str
    port: int
    key: str
    database: Path
    log: Path


@contextmanager
def keyed_server(folder: Path, **settings: str) -> Iterator[KeyedServer]:
    """`contacts-api serve` on a new SQLite database in `folder`, with one account's key, for
    tests that speak HTTP over raw sockets; `settings`: more CONTACTS_API_* variables."""
    from contacts_api.storage import migrate  # (not at the top: bench/server.py imports us)
    from tests.factories import new_account_key

    database, log = folder / "s.db", folder / "server.log"
    url = f"sqlite:///{database}"
    migrate.upgrade(url)
    key = new_account_key(url)
    with serve({"CONTACTS_API_DATABASE_URL": url, **settings}, log=log) as base:
        host, port = base.removeprefix("http://").split(":")
        yield KeyedServer(base, host, int(port), key, database, log)


def serve_to_exit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `contacts-api serve ARGS` expecting it to refuse to start; its exit and output."""
    return subprocess.run(
        [sys.executable, "-m", "contacts_api", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
