"""A database host that cannot be reached is said as such by every command, one line, exit 1.

The network is faked at the event loop's `create_connection`, where asyncpg connects: a host
with no route fails there with a plain OSError (EHOSTUNREACH), not a ConnectionError, and
the import and export used to call it "cannot write: Connect call failed".
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from contacts_api.cli import app

UNROUTABLE = "postgresql://postgres@203.0.113.1:5432/test"  # TEST-NET-3: never contacted


@pytest.fixture
def no_route(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    attempts: list[tuple[Any, ...]] = []

    async def create_connection(self: Any, factory: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError(errno.EHOSTUNREACH, f"Connect call failed {args!r}")

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", create_connection)
    return attempts


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "list", "--account", "acme"],
        ["import", "{file}", "--account", "acme"],
        ["export", "--account", "acme"],
        ["export", "--account", "acme", "--output", "{out}"],
        ["webhooks", "list", "--account", "acme"],
    ],
    ids=["keys-list", "import", "export", "export-output", "webhooks-list"],
)
def test_a_host_with_no_route_is_the_database_unavailable(
    no_route: list[tuple[Any, ...]], tmp_path: Path, command: list[str]
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("email\na@example.com\n")
    args = [a.format(file=leads, out=tmp_path / "out.csv") for a in command]

    result = CliRunner().invoke(app, args, env={"CONTACTS_API_DATABASE_URL": UNROUTABLE})

    assert no_route, "the command never tried to connect"
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: database unavailable: OSError: "), result.stderr
    assert "cannot write" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "leads.csv.errors.csv").exists()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections and never says a word (not PostgreSQL)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["db", "upgrade"], "OperationalError: connection timeout expired"),  # psycopg
        (["keys", "list", "--account", "acme"], "database unavailable: TimeoutError: "),
    ],
    ids=["migrations", "server-driver"],
)
def test_a_server_that_never_answers_is_given_up_after_connect_timeout(
    silent_port: int, command: list[str], said: str
) -> None:
    """Both drivers take the URL's connect_timeout (asyncpg refused it as an argument);
    without it they wait 10 s, not asyncpg's 60 or libpq's for ever."""
    url = f"postgresql://postgres@127.0.0.1:{silent_port}/x?connect_timeout=1"
    started = time.monotonic()
    result = CliRunner().invoke(app, command, env={"CONTACTS_API_DATABASE_URL": url})
    assert result.exit_code == 1, result.stderr
    assert said in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert time.monotonic() - started < 9  # well inside the 10 s default


@pytest.mark.parametrize(
    "command",
    [["keys", "list", "--account", "acme"], ["import", "{file}", "--account", "acme"]],
    ids=["keys-list", "import"],
)
def test_a_postgresql_socket_that_is_gone_is_the_database_unavailable(
    tmp_path: Path, command: list[str]
) -> None:
    """A local PostgreSQL stopped: its socket file is gone, an ENOENT that names no file,
    which the import and export called "cannot write: No such file or directory"."""
    leads = tmp_path / "leads.csv"
    leads.write_text("email\na@example.com\n")
    url = f"postgresql://postgres@/nowhere?host={tmp_path / 'no-socket-here'}"
    args = [a.format(file=leads) for a in command]

    result = CliRunner().invoke(app, args, env={"CONTACTS_API_DATABASE_URL": url})

    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("error: database unavailable: FileNotFoundError: ")
    assert result.stderr.count("\n") == 1, result.stderr
