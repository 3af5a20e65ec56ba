"""CLI values longer than their column: refused as bad usage naming the option, on both
backends, before anything is stored (PostgreSQL once printed its driver's error, SQLite stored
the value whole)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from contacts_api.cli import app
from contacts_api.storage import migrate
from contacts_api.storage.models import account_table, event_table, user_table

Command = Callable[[str], tuple[str, ...]]
EVENT = ("events", "create", "--account", "acme")

# The value's parameter as the message names it -> the column storing it, the command giving it.
STORED_VALUES: dict[str, tuple[sa.Column[str], Command]] = {
    "NAME": (account_table.c.name, lambda value: ("accounts", "create", value)),
    "--owner-email": (
        user_table.c.email,
        lambda value: ("accounts", "create", "beta", "--owner-email", value),
    ),
    "--name": (event_table.c.name, lambda value: (*EVENT, "--name", value)),
    "--link-prefix": (
        event_table.c.link_prefix,
        lambda value: (*EVENT, "--name", "Demo", "--link-prefix", value),
    ),
    "--type": (event_table.c.event_type, lambda value: (*EVENT, "--name", "Demo", "--type", value)),
}


# An event's name and link prefix are what a create's eventName and linkPrefix select.
SELECTORS = ("--name", "--link-prefix")


def run_cli(database_url: str, *args: str) -> Result:
    """The CLI in process (the callbacks refuse before any work; a subprocess per case made
    this file a minute and a half of the suite)."""
    return CliRunner().invoke(app, list(args), env={"CONTACTS_API_DATABASE_URL": database_url})


def row_counts(database_url: str) -> dict[str, int]:
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in (account_table, user_table, event_table)
            }
    finally:
        engine.dispose()


def stored(database_url: str, column: sa.Column[str], value: str) -> bool:
    engine = migrate.sync_engine(database_url)
    try:
        with engine.connect() as conn:
            found = sa.select(sa.func.count()).select_from(column.table).where(column == value)
            return conn.execute(found).scalar_one() == 1
    finally:
        engine.dispose()


def error_box_text(stderr: str) -> str:
    """The text inside typer's error box, its wrapped lines joined (the width may vary)."""
    inside = [line.strip("│ ") for line in stderr.splitlines() if line.startswith("│")]
    return " ".join(inside)


@pytest.mark.parametrize("parameter", STORED_VALUES)
def test_a_value_longer_than_its_column_is_bad_usage_and_nothing_is_stored(
    database_url: str, parameter: str
) -> None:
    column, command = STORED_VALUES[parameter]
    assert isinstance(column.type, sa.String) and column.type.length is not None
    limit = column.type.length
    # Characters, not bytes: a column holds `limit` of them (an owner's is an address).
    longest = "é" * (limit - 6) + "@x.org" if parameter == "--owner-email" else "é" * limit
    assert run_cli(database_url, "accounts", "create", "acme").exit_code == 0
    before = row_counts(database_url)

    refused = run_cli(database_url, *command("é" + longest))

    assert refused.exit_code == 2, refused.stderr
    unit = " (UTF-16 units, as the API counts them)" if parameter in SELECTORS else ""
    assert error_box_text(refused.stderr) == (
        f"Invalid value for {parameter}: at most {limit} characters{unit}"
    )
    assert refused.stdout == ""
    assert "Traceback" not in refused.stderr and "database error" not in refused.stderr
    assert row_counts(database_url) == before

    accepted = run_cli(database_url, *command(longest))
    assert accepted.exit_code == 0, accepted.stderr
    assert stored(database_url, column, longest)


@pytest.mark.parametrize("parameter", SELECTORS)
def test_an_event_selector_is_measured_as_a_create_measures_it(
    database_url: str, parameter: str
) -> None:
    """128 emoji fit the 255-character column but are 256 UTF-16 units: a create's eventName
    or linkPrefix of that length is refused, so such an event could never be selected."""
    column, command = STORED_VALUES[parameter]
    assert run_cli(database_url, "accounts", "create", "acme").exit_code == 0

    refused = run_cli(database_url, *command("😀" * 128))

    assert refused.exit_code == 2, refused.stderr
    assert "at most 255 characters (UTF-16 units" in error_box_text(refused.stderr)
    accepted = run_cli(database_url, *command("😀" * 127 + "a"))  # 255 units
    assert accepted.exit_code == 0, accepted.stderr
    assert stored(database_url, column, "😀" * 127 + "a")


@pytest.mark.parametrize("parameter", STORED_VALUES)
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_value_is_bad_usage_and_nothing_is_stored(
    database_url: str, parameter: str, value: str
) -> None:
    """An account or event named "" was stored (an event no create could ever select)."""
    _column, command = STORED_VALUES[parameter]
    assert run_cli(database_url, "accounts", "create", "acme").exit_code == 0
    before = row_counts(database_url)
    refused = run_cli(database_url, *command(value))
    assert refused.exit_code == 2, refused.stderr
    assert error_box_text(refused.stderr) == f"Invalid value for {parameter}: must not be empty"
    assert row_counts(database_url) == before


@pytest.mark.parametrize("owner", ["notanemail", "x y@z.org", "@z.org", "a@", "a@b@c"])
def test_an_owner_email_must_be_an_address(database_url: str, owner: str) -> None:
    refused = run_cli(database_url, "accounts", "create", "acme", "--owner-email", owner)
    assert refused.exit_code == 2, refused.stderr
    assert error_box_text(refused.stderr) == (
        "Invalid value for --owner-email: expected an email address such as owner@example.com"
    )
    assert row_counts(database_url)["account"] == 0
    assert run_cli(database_url, "accounts", "create", "acme").exit_code == 0  # owner@localhost
