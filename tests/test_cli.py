"""The `contacts-api` command as an operator runs it: real processes, real files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer

from contacts_api.bootstrap import SEED_BODY, is_loopback
from contacts_api.cli_serve import require_free_port
from contacts_api.settings import Settings
from tests.servers import free_port


def run_cli(
    db_url: str, *args: str, cwd: Path | None = None, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONTACTS_API_DATABASE_URL": db_url,
        "CONTACTS_API_LOG_FORMAT": "json",
        **(settings or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "contacts_api", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("RATE_LIMIT", "abc", "expected POINTS/SECONDS such as 20/1 (a second) or 20/60 (a"),
        # A bare count was read as per second, silently: 20 failed keys a second, not a minute.
        ("AUTH_FAIL_LIMIT", "20", "expected POINTS/SECONDS such as 20/1 (a second) or 20/60 (a"),
        ("RATE_LIMIT", "20/", "expected POINTS/SECONDS such as 20/1, got '20/'"),
        # A window ending after the year 9999 was taken: every request then got a 500.
        (
            "RATE_LIMIT",
            "1000/300000000000",
            "points must be at most 2147483647 and seconds at most 31622400 (366 days)",
        ),
        ("SQLITE_SYNCHRONOUS", "off", "Input should be 'FULL' or 'NORMAL'"),
        ("DUPLICATE_EMAIL", "rejected", "Input should be 'upsert', 'reject' or 'allow'"),
        ("LOG_FORMAT", "text", "Input should be 'console' or 'json'"),
        # Once "Input should be less than or equal to 36500", as if nan were a number too big.
        ("WEBHOOKS_RETENTION_DAYS", "nan", "Input should be a finite number"),
        ("DATABASE_URL", "mysql://x@127.0.0.1/db", "expected sqlite:///PATH or postgresql://"),
        # Once accepted: `serve` then died on the level with a traceback, every body got 413.
        ("LOG_LEVEL", "verbose", "expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'verbose'"),
        ("MAX_BODY_BYTES", "-1", "Input should be greater than or equal to 1"),
        ("KEY_CACHE_SECONDS", "-1", "Input should be greater than or equal to 0"),
        ("READ_TIMEOUT_SECONDS", "inf", "Input should be a finite number"),
        ("REDIS_URL", "notaurl", "expected redis://HOST:PORT/DB (or rediss://, unix://)"),
        # Each of these got through, to a traceback at the first connection, to a database
        # nobody meant (libpq's defaults: the socket, a database named as the OS user), or
        # to a database in memory that `db upgrade` migrated and no other command saw.
        ("DATABASE_URL", "postgresql://", "the URL names no database: expected postgresql://"),
        ("DATABASE_URL", "postgresql://u@127.0.0.1:99999/db", "the port is not 1-65535"),
        ("DATABASE_URL", "postgresql://u@127.0.0.1:x/db", "the port is not 1-65535"),
        (
            "DATABASE_URL",
            "postgresql://u@127.0.0.1/db?connect_timeout=soon",
            "connect_timeout is not a whole number of seconds",
        ),
        ("DATABASE_URL", "sqlite:///:memory:", "the URL names no file: expected sqlite:///PATH"),
        ("DATABASE_URL", "sqlite://", "the URL names no file: expected sqlite:///PATH"),
        (
            "DATABASE_URL",
            "postgresql://u@127.0.0.1/db?keepalives=1",
            "keepalives is a libpq parameter the server's driver (asyncpg) cannot take",
        ),
        ("REDIS_URL", "redis://127.0.0.1:notaport", "the port is not 1-65535"),
        ("REDIS_URL", "redis://127.0.0.1:6379/abc", "the database after the port must be a"),
        # The dispatcher crashed on a lease of 1e300 s and delivered nothing.
        ("WEBHOOKS_LEASE_SECONDS", "1e300", "Input should be less than or equal to 86400"),
    ],
)
@pytest.mark.parametrize("command", [("db", "upgrade"), ("keys", "list", "--account", "a")])
def test_a_bad_setting_is_one_line_naming_it(
    db_url: str, name: str, value: str, reason: str, command: tuple[str, ...]
) -> None:
    done = run_cli(db_url, *command, settings={f"CONTACTS_API_{name}": value})
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: invalid setting CONTACTS_API_{name}: {reason}")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://app:S3cret@PW@127.0.0.1/db", "'mysql://app:***@127.0.0.1/db'"),
        ("postgresql://app:S3cretPW@127.0.0.1:1/db", "postgresql://app:***@127.0.0.1:1/db"),
        # postgres://, as hosting providers hand it out, is PostgreSQL: here, unreachable.
        ("postgres://app:S3cretPW@127.0.0.1:1/db", "postgresql://app:***@127.0.0.1:1/db"),
        # Unencoded, the drivers read part of the password as the host, and name it.
        ("postgresql://app:S3cret@PW@127.0.0.1:1/db", "to write percent-encoded (@ as %40"),
        ("postgresql://app:S3cret/PW@127.0.0.1:1/db", "'postgresql://app:***@127.0.0.1:1/db'"),
        ("postgresql://app@127.0.0.1:1/db?password=S3cretPW", "db?password=***:"),
    ],
    ids=["refused", "unreachable", "postgres-scheme", "raw-at", "raw-slash", "in-query"],
)
def test_a_database_password_is_never_printed(tmp_path: Path, url: str, shown: str) -> None:
    done = run_cli(url, "db", "upgrade")
    assert done.returncode == 1
    assert shown in done.stderr
    assert "S3cret" not in done.stderr and "PW" not in done.stderr


def test_a_database_from_a_newer_version_is_one_clear_line(db_url: str) -> None:
    """A revision we do not ship (a newer contacts-api upgraded the database, and this one
    was rolled back to) was a traceback."""
    assert run_cli(db_url, "db", "upgrade").returncode == 0
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    done = run_cli(db_url, "db", "upgrade")
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"error: cannot migrate {db_url}: Can't locate revision identified by '0099':"
        " was it upgraded by a newer contacts-api?"
    )
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("accounts", "create", "acme"),
        ("keys", "list", "--account", "acme"),
        ("export", "--account", "acme"),
        ("import", "leads.csv", "--account", "acme"),
    ],
)
def test_a_command_on_a_database_never_upgraded_says_so(
    db_url: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """They said `database error: OperationalError: ... no such table: account`."""
    (tmp_path / "leads.csv").write_text("email\na@example.com\n")
    Path(db_url.removeprefix("sqlite:///")).touch()  # made, never upgraded
    done = run_cli(db_url, *command, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"error: {db_url} is not at this version's schema: run `contacts-api db upgrade`"
        " first (`serve` applies it too)\n",
    )


@pytest.mark.parametrize(
    "command",
    [
        ("accounts", "create", "acme"),
        ("keys", "list", "--account", "acme"),
        ("import", "leads.csv", "--account", "acme"),
        ("webhooks", "dispatch"),
    ],
)
def test_a_command_where_no_database_is_makes_none_and_says_where(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """With the URL unset (or misspelt), each made an empty ./contacts.db wherever it ran and
    said to upgrade it: an empty database in the wrong folder."""
    (tmp_path / "leads.csv").write_text("email\na@example.com\n")
    done = run_cli("sqlite:///./contacts.db", *command, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"error: no database at {tmp_path / 'contacts.db'}: `contacts-api db upgrade` makes one"
        " (`serve` too), or set CONTACTS_API_DATABASE_URL to the one meant\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv"]


@pytest.mark.parametrize("command", ["db upgrade", "serve --port"])
def test_a_folder_not_there_is_named(tmp_path: Path, command: str) -> None:
    """SQLite said only `unable to open database file`, of a path it did not name."""
    url = f"sqlite:///{tmp_path}/typo/contacts.db"
    arguments = command.split() + ([str(free_port())] if command.startswith("serve") else [])
    done = run_cli(url, *arguments)
    assert (done.returncode, done.stderr) == (
        1,
        f"error: cannot migrate {url}: there is no folder {tmp_path}/typo to make the database"
        " in\n",
    )


def test_a_command_on_a_database_one_migration_behind_says_so(db_url: str) -> None:
    """Installed a new version, not upgraded: migration 0008 adds a column, and `webhooks
    list` said `no such column: webhook_endpoint.earlier_secrets`."""
    assert run_cli(db_url, "db", "upgrade").returncode == 0
    assert run_cli(db_url, "accounts", "create", "acme").returncode == 0
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:  # as 0007 left it
        conn.execute("ALTER TABLE webhook_endpoint DROP COLUMN earlier_secrets")
        conn.execute("UPDATE alembic_version SET version_num = '0007'")
    done = run_cli(db_url, "webhooks", "list", "--account", "acme")
    assert (done.returncode, done.stderr) == (
        1,
        f"error: {db_url} is not at this version's schema: run `contacts-api db upgrade`"
        " first (`serve` applies it too)\n",
    )
    assert run_cli(db_url, "db", "upgrade").returncode == 0
    assert run_cli(db_url, "webhooks", "list", "--account", "acme").returncode == 0


def test_the_dispatcher_on_a_database_not_upgraded_is_one_line(db_url: str) -> None:
    """It once ran on, logging a traceback for every poll ("no such table")."""
    said = (
        f"error: {db_url} is not at this version's schema: run `contacts-api db upgrade`"
        " first (`serve` applies it too)\n"
    )
    Path(db_url.removeprefix("sqlite:///")).touch()
    never_upgraded = run_cli(db_url, "webhooks", "dispatch")
    assert (never_upgraded.returncode, never_upgraded.stdout, never_upgraded.stderr) == (
        1,
        "",
        said,
    )
    assert run_cli(db_url, "db", "upgrade").returncode == 0
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    # It said to run `db upgrade`, which then failed: there is no downgrade.
    from_a_newer_version = run_cli(db_url, "webhooks", "dispatch")
    assert (from_a_newer_version.returncode, from_a_newer_version.stderr) == (
        1,
        f"error: {db_url} was upgraded by a newer contacts-api: run that version, or restore"
        " the backup taken before upgrading\n",
    )
    unreachable = run_cli("postgresql://app@127.0.0.1:1/db", "webhooks", "dispatch")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot read postgresql://app@127.0.0.1:1/db: ")
    assert unreachable.stderr.count("\n") == 1, unreachable.stderr


def test_ctrl_c_while_the_cli_loads_exits_130_quietly() -> None:
    """A Ctrl-C in the second or two the CLI's modules take to load printed a traceback. The
    interrupt is raised where such a one lands, in the import of contacts_api.cli, by a hook."""
    interrupted_load = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'contacts_api.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "import runpy\n"
        "runpy.run_module('contacts_api', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", interrupted_load, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "")


def test_settings_that_disagree_are_one_line_naming_both(db_url: str) -> None:
    done = run_cli(
        db_url, "db", "upgrade", settings={"CONTACTS_API_WEBHOOKS_TIMEOUT_SECONDS": "40"}
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: invalid settings: CONTACTS_API_WEBHOOKS_LEASE_SECONDS (30) must exceed"
        " CONTACTS_API_WEBHOOKS_TIMEOUT_SECONDS (40)\n"
    )


def test_a_taken_link_prefix_is_one_clear_line(db_url: str) -> None:
    assert run_cli(db_url, "db", "upgrade").returncode == 0
    assert run_cli(db_url, "accounts", "create", "acme").returncode == 0
    event = ("events", "create", "--account", "acme", "--name", "Demo", "--link-prefix", "acme/d")
    assert run_cli(db_url, *event).returncode == 0
    again = run_cli(db_url, *event)
    assert again.returncode == 1
    assert again.stderr == (
        "error: account 'acme' already has an event with link prefix 'acme/d'\n"
    )


def test_the_logging_modules_level_aliases_are_taken(db_url: str) -> None:
    for level in ("warn", "FATAL", "Debug"):
        done = run_cli(db_url, "db", "upgrade", settings={"CONTACTS_API_LOG_LEVEL": level})
        assert done.returncode == 0, done.stderr


def test_a_choice_setting_is_taken_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """`full` (as SQLite's own PRAGMA takes it), `Reject` or `JSON` once stopped every command."""
    monkeypatch.setenv("CONTACTS_API_SQLITE_SYNCHRONOUS", "normal")
    monkeypatch.setenv("CONTACTS_API_DUPLICATE_EMAIL", " Reject ")
    monkeypatch.setenv("CONTACTS_API_LOG_FORMAT", "JSON")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.sqlite_synchronous, settings.duplicate_email, settings.log_format) == (
        "NORMAL",
        "reject",
        "json",
    )


def test_an_empty_setting_is_its_default(db_url: str) -> None:
    """`CONTACTS_API_X=`, as a .env or compose file writes "unset", was once a traceback."""
    empty = {"CONTACTS_API_WEBHOOKS_ALLOW_PRIVATE": "", "CONTACTS_API_RATE_LIMIT": ""}
    done = run_cli(db_url, "db", "upgrade", settings=empty)
    assert done.returncode == 0, done.stderr


def test_account_key_event_round_trip(db_url: str, tmp_path: Path) -> None:
    assert run_cli(db_url, "db", "upgrade").returncode == 0
    created = run_cli(db_url, "accounts", "create", "acme", "--owner-email", "boss@acme.test")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"accountId": 1, "userId": 1}

    key = run_cli(db_url, "keys", "create", "--account", "acme")
    assert key.returncode == 0
    assert re.fullmatch(r"iclosed_[A-Za-z0-9_-]{32,}\n", key.stdout)

    event = run_cli(
        db_url,
        "events",
        "create",
        "--account",
        "acme",
        "--name",
        "Demo",
        "--link-prefix",
        "acme/demo",
    )
    assert json.loads(event.stdout) == {"eventId": 1}

    listing = run_cli(db_url, "keys", "list", "--account", "acme")
    assert listing.returncode == 0
    assert key.stdout.strip()[:12] in listing.stdout
    assert key.stdout.strip() not in listing.stdout  # never the whole key again

    assert run_cli(db_url, "keys", "revoke", "1").returncode == 0
    again = run_cli(db_url, "keys", "revoke", "1")
    assert again.returncode == 1
    assert again.stderr.strip() == "error: no active key with id 1"


def test_a_listing_prints_its_cells_as_stored(db_url: str) -> None:
    """rich read an owner email `[red]o@x.org` as markup (and printed `o@x.org`)."""
    run_cli(db_url, "db", "upgrade")
    created = run_cli(db_url, "accounts", "create", "acme", "--owner-email", "[red]o:-1:@x.org")
    assert created.returncode == 0, created.stderr
    assert run_cli(db_url, "keys", "create", "--account", "acme").returncode == 0
    listing = run_cli(db_url, "keys", "list", "--account", "acme")
    assert listing.returncode == 0
    assert "[red]o:-1:@x.org" in listing.stdout


def test_user_errors_exit_1_with_one_line(db_url: str) -> None:
    run_cli(db_url, "db", "upgrade")
    result = run_cli(db_url, "keys", "create", "--account", "nobody")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "error: no account named 'nobody'"
    assert "Traceback" not in result.stderr
    run_cli(db_url, "accounts", "create", "acme")
    duplicate = run_cli(db_url, "accounts", "create", "acme")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr


def test_bad_usage_exits_2(db_url: str) -> None:
    assert run_cli(db_url, "keys", "create").returncode == 2  # --account is required
    for when in ("tomorrow", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        expiry = run_cli(db_url, "keys", "create", "--account", "a", "--expires-at", when)
        assert expiry.returncode == 2, when
        assert "Traceback" not in expiry.stderr, when


def test_past_expiry_gives_an_expired_key(db_url: str) -> None:
    run_cli(db_url, "db", "upgrade")
    run_cli(db_url, "accounts", "create", "acme")
    result = run_cli(
        db_url, "keys", "create", "--account", "acme", "--expires-at", "2020-01-01T00:00:00Z"
    )
    assert result.returncode == 0
    offset = run_cli(
        db_url, "keys", "create", "--account", "acme", "--expires-at", "2999-01-01T00:00:00+02:00"
    )
    assert offset.returncode == 0
    listing = run_cli(db_url, "keys", "list", "--account", "acme").stdout
    assert "2020-01-01T00:00:00" in listing and "2998-12-31T22:00:00" in listing


def test_an_argument_that_is_not_utf8_is_one_line(db_url: str, tmp_path: Path) -> None:
    """Bytes that are not UTF-8 in a name (a shell's `$(printf 'a\\xff')`, a file of another
    encoding pasted in) once ended in a traceback from the database driver or a length rule."""
    assert run_cli(db_url, "db", "upgrade").returncode == 0
    assert run_cli(db_url, "accounts", "create", "acme", "--owner-email", "o@x.io").returncode == 0
    odd = os.fsdecode(b"acme\xff")
    commands = [
        ("accounts", "create", odd, "--owner-email", "o@x.io"),
        ("keys", "list", "--account", odd),
        ("events", "create", "--account", "acme", "--name", odd, "--link-prefix", "a/b"),
        ("export", "--account", odd),
    ]
    for command in commands:
        done = run_cli(db_url, *command)
        assert (done.returncode, done.stdout) == (2, ""), command
        assert done.stderr == "error: the argument b'acme\\xff' is not UTF-8 text\n", command
    # A name that is also a file's is no different.
    (tmp_path / os.fsdecode(b"acme\xff")).write_text("")
    done = run_cli(db_url, "keys", "list", "--account", odd, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "error: the argument b'acme\\xff' is not UTF-8 text\n",
    )
    # A file's name is the system's bytes: `import` reads such a file, or says why not.
    named = os.fsencode(tmp_path) + b"/leads\xe9.csv"
    with open(named, "wb") as f:
        f.write(b"email\na@example.com\n")
    done = run_cli(db_url, "import", os.fsdecode(named), "--account", "acme")
    assert done.returncode == 1
    assert done.stderr.endswith("its name is not UTF-8; rename it\n"), done.stderr


def test_works_from_any_directory(db_url: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_cli(db_url, "db", "upgrade", cwd=elsewhere).returncode == 0
    assert run_cli(db_url, "accounts", "create", "x", cwd=elsewhere).returncode == 0


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_first_serve_bootstraps_and_the_seed_curl_example_answers_201(
    tmp_path: Path, log_format: str
) -> None:
    """What `make run` does on a fresh clone, then the vendor page's own request. With JSON
    logs the key comes as one JSON line among the others (it was plain text between them)."""
    port = free_port()
    env = {
        **os.environ,
        "CONTACTS_API_DATABASE_URL": f"sqlite:///{tmp_path}/first.db",
        "CONTACTS_API_LOG_FORMAT": log_format,
    }
    with subprocess.Popen(
        [sys.executable, "-m", "contacts_api", "serve", "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as server:
        try:
            check_first_start(server, port, as_json=log_format == "json")
        finally:
            server.terminate()
            server.wait(timeout=15)
        assert server.stdout is not None and server.stdout.read() == ""  # stdout: logs never


def test_first_serve_beyond_this_machine_prints_no_key(tmp_path: Path) -> None:
    """A deployment (0.0.0.0) keeps its stderr in a journal or a log shipper: the first start
    printed a working key there for an account nobody asked for. It makes nothing and says
    how to make an account and key."""
    db_url = f"sqlite:///{tmp_path}/deployed.db"
    port = free_port()
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": db_url, "CONTACTS_API_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "contacts_api", "serve", "--host", "0.0.0.0", "--port"]  # noqa: S104
    with subprocess.Popen(
        [*command, str(port)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as server:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                time.sleep(0.1)
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=15)
    assert "iclosed_" not in stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line]  # JSON, every one
    assert any(line["event"].startswith("No account yet.") for line in lines)
    assert "contacts-api keys create --account NAME" in stderr
    listed = run_cli(db_url, "keys", "list", "--account", "default")
    assert (listed.returncode, listed.stderr) == (1, "error: no account named 'default'\n")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104
        ("::", False),
        ("192.168.1.10", False),
        ("::ffff:127.0.0.1", False),  # mapped: not taken for loopback (the safe side)
        ("LOCALHOST", False),
        ("example.com", False),
    ],
)
def test_which_hosts_count_as_this_machine_for_the_first_start(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def check_first_start(server: subprocess.Popen[str], port: int, as_json: bool) -> None:
    """Read the key the first start prints, then send the seed's example with it."""
    assert server.stderr is not None
    key = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and key is None:
        line = server.stderr.readline()
        if as_json:
            fields = json.loads(line)  # every line, the key's too
            key = fields.get("api_key")
            if key is not None:
                assert fields["event"].endswith("API key shown once, keep it")
                assert f"Bearer {key}" in fields["try_it"]
        else:
            match = re.search(r"API key \(shown once, keep it\): (iclosed_\S+)", line)
            key = match.group(1) if match else None
    assert key, "serve printed no key on first start"
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    response = httpx.post(
        f"{url}/v1/contacts",
        content=SEED_BODY,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    contact = response.json()["data"]["contact"]
    assert contact["email"] == "jane.doe@example.com"
    assert contact["tagId"] is not None


def test_serve_on_a_taken_port_is_one_line(db_url: str) -> None:
    """One worker: uvicorn found the port taken only after the app had started, and exited
    with status 3 and its own log lines."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(db_url, "serve", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize("port", ["0", "65536", "70000", "-1"])
def test_serve_on_a_port_that_does_not_exist_is_bad_usage(db_url: str, port: str) -> None:
    """65536 and up were taken, and uvicorn listened on some other port without a word."""
    done = run_cli(db_url, "serve", "--port", port)
    assert done.returncode == 2
    assert "Invalid value for '--port'" in done.stderr
    assert "Uvicorn running" not in done.stderr


def test_a_cli_error_is_printed_as_written(db_url: str) -> None:
    """rich read `:-1:` as an emoji code and printed a thumbs-down in the host's place."""
    done = run_cli(db_url, "serve", "--host", "no-such-host.invalid:-1:")
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot listen on no-such-host.invalid:-1::4000: ")


def test_serve_stopped_by_sigterm_removes_its_metrics_folder(db_url: str, tmp_path: Path) -> None:
    """uvicorn raises SIGTERM again once it has stopped; with the default action the
    process died before removing the folder its metrics were written to."""
    folders = tmp_path / "tmp"
    folders.mkdir()
    port = free_port()
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": db_url, "TMPDIR": str(folders)}
    with subprocess.Popen(
        [sys.executable, "-m", "contacts_api", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as server:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not healthy(port):
                time.sleep(0.2)
            [made] = folders.iterdir()
            assert made.name.startswith("contacts-api-metrics-")
            server.terminate()
            assert server.wait(timeout=30) == -signal.SIGTERM  # ended by the signal, as before
        finally:
            if server.poll() is None:
                server.kill()
    assert list(folders.iterdir()) == []


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_port_check_binds_each_family_as_asyncio_does() -> None:
    """`--host ::` beside an IPv4 listener on the same port: asyncio binds IPv6 only
    (IPV6_V6ONLY), so serve can start, and the check lets it; `--host ""` means every
    address, where the IPv4 one is taken."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", 0))  # noqa: S104 -- a listener on every IPv4 address
        taken.listen()
        port = taken.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6) as free:
                free.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                free.bind(("::", port))
        except OSError:
            pytest.skip("no IPv6 on this machine")
        require_free_port("::", port)
        with pytest.raises(typer.Exit):
            require_free_port("", port)


def test_a_dot_env_that_is_not_utf8_is_one_line(db_url: str, tmp_path: Path) -> None:
    """It was a traceback (UnicodeDecodeError) from every command."""
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"CONTACTS_API_LOG_LEVEL=d\xe9bug\n")
    done = run_cli(db_url, "keys", "list", "--account", "a", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"error: cannot read settings from {env_file}: byte 24 is not UTF-8\n"


def test_a_dot_env_line_skipped_is_named(db_url: str, tmp_path: Path) -> None:
    """python-dotenv warned `could not parse statement starting at line 2`: of which file?"""
    (tmp_path / ".env").write_text("CONTACTS_API_LOG_LEVEL=INFO\nexport = this is no setting\n")
    done = run_cli(db_url, "db", "upgrade", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        0,
        f"warning: {tmp_path / '.env'} line 2 is not NAME=VALUE: ignored\n",
    )
