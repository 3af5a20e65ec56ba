"""`serve --workers 2` on Linux: each worker listens on a socket of its own (SO_REUSEPORT), so
the kernel spreads connections over the workers instead of the first to wake taking them."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_service import drop_prefix, shared_redis
from tests.servers import serve, serve_to_exit, wait_until

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreads on Linux")

LISTEN, ESTABLISHED = "0A", "01"


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    url, prefix = shared_redis()
    yield url, prefix
    drop_prefix(url, prefix)


def sockets_on(port: int, state: str) -> set[str]:
    """Inodes of the IPv4 TCP sockets whose local port is `port`, in `state`."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            found.add(fields[9])
    return found


def owners(inodes: set[str]) -> dict[int, int]:
    """How many of these socket inodes each process holds."""
    counts: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        held = sum(1 for link in links if link[8:-1] in inodes and link.startswith("socket:"))
        if held:
            counts[int(pid)] = held
    return counts


def healthz(sock: socket.socket) -> None:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while not received.endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        received += chunk


def settings_env(database_url: str, redis_prefix: tuple[str, str]) -> dict[str, str]:
    redis_url, prefix = redis_prefix
    return {
        "CONTACTS_API_DATABASE_URL": database_url,
        "CONTACTS_API_REDIS_URL": redis_url,
        "CONTACTS_API_REDIS_PREFIX": prefix,
    }


def test_each_worker_accepts_on_its_own_socket_and_gets_its_share(
    database_url: str, redis_prefix: tuple[str, str], tmp_path: Path
) -> None:
    env = settings_env(database_url, redis_prefix)
    with serve(env, workers=2, log=tmp_path / "server.log") as base:
        port = int(base.rsplit(":", 1)[1])
        wait_until(
            lambda: len(owners(sockets_on(port, LISTEN))) == 2, timeout=30, what="both workers"
        )
        listeners = owners(sockets_on(port, LISTEN))
        assert len(listeners) == 2, listeners  # one listening socket in each worker
        assert set(listeners.values()) == {1}

        # 64 connections opened at once, as a load balancer filling its pool.
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        try:
            for sock in connections:
                healthz(sock)
            served = owners(sockets_on(port, ESTABLISHED))
            served = {pid: n for pid, n in served.items() if pid in listeners}
            assert sum(served.values()) == 64
            assert min(served.get(pid, 0) for pid in listeners) >= 16, served
        finally:
            for sock in connections:
                sock.close()

        # A worker that dies is replaced by uvicorn, on a socket of its own again.
        victim = next(iter(listeners))
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: (
                len(owners(sockets_on(port, LISTEN))) == 2
                and victim not in owners(sockets_on(port, LISTEN))
            ),
            timeout=30,
            what="the worker replaced",
        )
        with socket.create_connection(("127.0.0.1", port)) as sock:
            healthz(sock)


def test_a_port_already_taken_is_refused_not_shared(
    database_url: str, redis_prefix: tuple[str, str], tmp_path: Path
) -> None:
    """SO_REUSEPORT would let a second server quietly share a port; serve checks it first."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_API_")},
        **settings_env(database_url, redis_prefix),
    }
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that allows it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_to_exit(env, "--port", str(port), "--workers", "2")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
