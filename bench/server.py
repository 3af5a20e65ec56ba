"""Start a real `contacts-api serve` on loopback against a fresh database, with an account."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.servers import free_port

WORKERS = 2  # BENCH_WORKERS, read by bench/run.py
BENCH_RATE_LIMIT = "1000000/1"  # high enough not to interfere; the limiter stays on the path


@dataclass
class RunningServer:
    url: str
    key: str
    database_url: str
    account_id: int
    user_id: int
    process: subprocess.Popen[bytes]

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker process (children of the serve process)."""
        pids = _descendants(self.process.pid) or [self.process.pid]
        sizes = []
        for pid in pids:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                kb = next(
                    int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
                )
                sizes.append(kb / 1024)
        return sizes


def _listening_sockets(port: int) -> list[str]:
    """IPv4 TCP sockets listening on `port` (Linux's /proc/net/tcp; none elsewhere)."""
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        return [
            fields[9]
            for fields in map(str.split, lines)
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A"
        ]
    return []


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in map(int, children):
                found.append(child)
                found.extend(_descendants(child))
    return [p for p in found if _is_worker(p)]


def _is_worker(pid: int) -> bool:
    """A Python process other than multiprocessing's resource tracker (a helper of the
    supervisor's, ~12 MB, which serves no request)."""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"python" in cmdline and b"resource_tracker" not in cmdline
    return False


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "contacts_api", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"contacts-api {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def bench_env(database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CONTACTS_API_DATABASE_URL": database_url,
        "CONTACTS_API_LOG_LEVEL": "WARNING",
    }
    env.setdefault("CONTACTS_API_LOG_FORMAT", "json")
    if "CONTACTS_API_REDIS_URL" not in env and _redis_answers():
        env["CONTACTS_API_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    return env


def _redis_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 6379), timeout=1):
        return True
    return False


@contextlib.contextmanager
def running_server(database_url: str, workers: int | None = None) -> Iterator[RunningServer]:
    env = bench_env(database_url)  # without Redis, serve's workers share a counter file
    workers = WORKERS if workers is None else workers
    cli(env, "db", "upgrade")
    ids = json.loads(cli(env, "accounts", "create", "bench", "--owner-email", "bench@localhost"))
    cli(
        env,
        "events",
        "create",
        "--account",
        "bench",
        "--name",
        "Product Demo",
        "--link-prefix",
        "bench/demo",
    )
    key = cli(env, "keys", "create", "--account", "bench")
    cli(env, "accounts", "set-rate-limit", "bench", "--limit", BENCH_RATE_LIMIT)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contacts_api",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=None if os.environ.get("BENCH_STDERR") else subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("server did not become ready")
            time.sleep(0.2)
        # /readyz answers once one worker is up; a run started before the others listen would
        # put every wrk connection on that one (each worker has a socket of its own on Linux).
        while len(_listening_sockets(port)) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        yield RunningServer(url, key, database_url, ids["accountId"], ids["userId"], process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
