"""The `contacts-api` command: thin wrappers that parse arguments and call the services.

stdout carries only each command's documented output; logs and hints go to stderr.
Exit status: 0 success, 1 a user error (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import alembic.util
import pydantic
import sqlalchemy.exc
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts import service as accounts
from contacts_api.cli_bulk import register_bulk_commands
from contacts_api.cli_lengths import fits
from contacts_api.cli_run import (
    driver_says,
    fail,
    refuse_a_missing_database,
    stderr,
    with_database,
)
from contacts_api.contacts import live_count
from contacts_api.events import service as events
from contacts_api.paging import MAX_ID
from contacts_api.settings import Rate, Settings, redacted_url
from contacts_api.storage import migrate
from contacts_api.storage.engine import Database
from contacts_api.storage.models import account_table, event_table, user_table
from contacts_api.storage.sqlite_setup import missing_folder
from contacts_api.timeutil import parse_iso, utcnow

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
accounts_app = typer.Typer(no_args_is_help=True, help="Accounts (tenants).")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
events_app = typer.Typer(no_args_is_help=True, help="Bookable events.")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(events_app, name="events")
register_bulk_commands(app)


def table_console() -> Console:
    """Where a command prints its table: the terminal's width on a terminal; piped, wide
    enough that no cell is cut short or wrapped (`| grep`, `> file`). Cells are printed as
    stored: an owner email `[red]a@b.c` is no markup, `:-1:` no emoji."""
    return Console(width=None if sys.stdout.isatty() else 1000, markup=False, emoji=False)


def in_transaction(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one write transaction against the configured database."""

    async def run(db: Database) -> T:
        async with db.transaction() as conn:
            return await work(conn)

    return with_database(run)


def _note(line: str) -> None:
    stderr.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)


def upgrade_database(settings: Settings) -> None:
    url = redacted_url(settings.database_url)
    folder = missing_folder(settings.database_url)
    if folder is not None:
        raise fail(f"cannot migrate {url}: there is no folder {folder} to make the database in")
    try:
        migrate.upgrade(settings.database_url, say=_note)
    except migrate.UpgradeLockTimeout:
        minutes = migrate.UPGRADE_WAIT_MS // 60_000
        raise fail(
            f"cannot migrate {url}: another upgrade of it held the lock for over {minutes}"
            " minutes; nothing was changed"
        ) from None
    except migrate.TablesLocked as exc:
        raise fail(
            f"cannot migrate {url}: a table it changes stayed locked by another transaction (a"
            f" long query, a backup?) through {migrate.LOCK_ATTEMPTS} tries: {exc}. Nothing was"
            " changed; run it again once that transaction is over"
        ) from None
    except alembic.util.CommandError as exc:  # a revision we do not ship
        raise fail(
            f"cannot migrate {url}: {exc}: was it upgraded by a newer contacts-api? There is"
            " no downgrade: run that version, or restore the backup taken before upgrading"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise fail(f"cannot migrate {url}: {driver_says(exc)}") from None


def require_current_schema(settings: Settings) -> None:
    """One line and exit 1 unless the database is reachable and at this version's schema:
    a command that runs on (the dispatcher) would otherwise log a traceback a second."""
    url = redacted_url(settings.database_url)
    refuse_a_missing_database(settings.database_url)
    try:
        state = migrate.database_schema_state(settings.database_url)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise fail(f"cannot read {url}: {driver_says(exc)}") from None
    if state != "current":
        raise fail(migrate.not_current(settings.database_url, state))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    upgrade_database(Settings())


@db_app.command("recount")
def db_recount() -> None:
    """Rebuild every account's live-contact count from the contacts themselves.

    Needed only after contacts were inserted into a SQLite database by hand (outside the
    server), which no trigger counts there (migration 0006). Prints {"accounts", "contacts"}.
    """

    async def work(conn: AsyncConnection) -> dict[str, int]:
        if conn.dialect.name == "postgresql":  # no writer may count meanwhile
            await conn.exec_driver_sql("LOCK TABLE contact IN SHARE MODE")
        for statement in live_count.RECOUNT:
            await conn.exec_driver_sql(statement)
        totals = sqlalchemy.text("SELECT count(*), coalesce(sum(live), 0) FROM contact_live_count")
        accounts_counted, contacts = (await conn.execute(totals)).one()
        return {"accounts": int(accounts_counted), "contacts": int(contacts)}

    print(json.dumps(in_transaction(work)))


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Argument(callback=fits(account_table.c.name))],
    owner_email: Annotated[
        str,
        typer.Option(
            help="Email of the account's first user",
            callback=fits(user_table.c.email, address=True),
        ),
    ] = "owner@localhost",
) -> None:
    """Create an account with one user; prints {"accountId":…,"userId":…}."""
    created = in_transaction(lambda c: accounts.create_account(c, name, owner_email, utcnow()))
    print(json.dumps({"accountId": created.account_id, "userId": created.user_id}))


@accounts_app.command("set-rate-limit")
def accounts_set_rate_limit(
    name: str,
    limit: Annotated[
        str | None, typer.Option(help="POINTS/SECONDS, e.g. 100/1 (per method and route)")
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Follow CONTACTS_API_RATE_LIMIT again")
    ] = False,
) -> None:
    """Set the account's own rate limit, or --default to drop it; running servers pick it up
    within 5 seconds."""
    if (limit is None) == (not default):
        raise typer.BadParameter("give either --limit POINTS/SECONDS or --default")
    rate = None
    if limit is not None:
        try:
            rate = Rate.parse(limit)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--limit") from None
    in_transaction(lambda c: accounts.set_rate_limit(c, name, rate))
    shown = str(rate) if rate else f"the server default ({Settings().rate_limit})"
    stderr.print(f"account {name!r} now follows {shown}", markup=False, highlight=False)


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account name")],
    user: Annotated[str | None, typer.Option(help="User email (default: the first user)")] = None,
    expires_at: Annotated[
        str | None, typer.Option(help="ISO 8601 with Z or an offset, e.g. 2030-01-01T00:00:00Z")
    ] = None,
) -> None:
    """Create an API key; prints the key alone (it is never shown again)."""
    expiry = None
    if expires_at is not None:
        try:
            expiry = parse_iso(expires_at)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--expires-at") from None
    key = in_transaction(
        lambda c: accounts.create_key(c, account, utcnow(), user_email=user, expires_at=expiry)
    )
    print(key)


@keys_app.command("list")
def keys_list(account: Annotated[str, typer.Option(help="Account name")]) -> None:
    """The account's keys (prefix only, never the whole key)."""
    rows = in_transaction(lambda c: accounts.list_keys(c, account))
    table = Table("id", "prefix", "user", "created", "expires", "revoked")
    for row in rows:
        table.add_row(
            str(row.id),
            f"{row.display_prefix}…",
            row.user_email,
            row.created_at.isoformat(timespec="seconds"),
            row.expires_at.isoformat(timespec="seconds") if row.expires_at else "-",
            row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "-",
        )
    # A pipe gets full, unwrapped lines rather than a table squeezed to 80 columns.
    table_console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="Key id (see `keys list`)")],
) -> None:
    """Revoke a key by id (see `keys list`).

    Running servers stop accepting it within CONTACTS_API_KEY_CACHE_SECONDS (default 2 s), the
    time they may keep a checked key in their cache.
    """
    in_transaction(lambda c: accounts.revoke_key(c, key_id, utcnow()))


@events_app.command("create")
def events_create(
    account: Annotated[str, typer.Option(help="Account name")],
    name: Annotated[
        str,
        typer.Option(
            help="Event name (what eventName matches)",
            callback=fits(event_table.c.name, as_the_api_counts=True),
        ),
    ],
    link_prefix: Annotated[
        str | None,
        typer.Option(
            help="e.g. acme/product-demo",
            callback=fits(event_table.c.link_prefix, as_the_api_counts=True),
        ),
    ] = None,
    type_: Annotated[
        str, typer.Option("--type", help="Event type", callback=fits(event_table.c.event_type))
    ] = "ONE_ON_ONE",
) -> None:
    """Create a bookable event; prints {"eventId":…}."""
    event_id = in_transaction(
        lambda c: events.create_event(
            c, account, name, utcnow(), link_prefix=link_prefix, event_type=type_
        )
    )
    print(json.dumps({"eventId": event_id}))


# Registered last: the serve and webhooks commands reuse this module's helpers.
from contacts_api.cli_serve import serve  # noqa: E402
from contacts_api.webhooks.cli import webhooks_app  # noqa: E402

app.command()(serve)
app.add_typer(webhooks_app, name="webhooks")


def main() -> None:
    odd = not_utf8_argument(sys.argv[1:])
    if odd is not None:
        fail(f"the argument {os.fsencode(odd)!r} is not UTF-8 text")
        sys.exit(2)
    problem = dot_env_problem()
    if problem is not None:
        fail(problem)
        sys.exit(1)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except pydantic.ValidationError as exc:  # a setting's value, from the environment or .env
        fail(settings_error(exc))
        sys.exit(1)


def dot_env_problem() -> str | None:
    """Why the working directory's .env, which every command reads its settings from too,
    cannot be read (one that is not UTF-8, or unreadable, was a traceback); None if it can,
    or if there is no such file (pydantic-settings then reads none)."""
    env_file = Path(".env")
    if not env_file.is_file():
        return None
    try:
        env_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return f"cannot read settings from {env_file.absolute()}: byte {exc.start} is not UTF-8"
    except OSError as exc:
        return f"cannot read settings from {env_file.absolute()}: {exc.strerror or exc}"
    return None


def not_utf8_argument(args: list[str]) -> str | None:
    """The first argument whose bytes are not UTF-8 (Python holds them as lone surrogates,
    which no database, length rule or output takes), but for `import`'s FILE when it exists:
    a path is bytes to the system, and `import` names such a file in an error of its own."""
    command = args[0] if args else ""
    for arg in args:
        try:
            arg.encode()
        except UnicodeEncodeError:
            if not (command == "import" and os.path.lexists(arg)):
                return arg
    return None


def settings_error(exc: pydantic.ValidationError) -> str:
    """One line naming the first refused setting by its variable, and why."""
    error = exc.errors()[0]
    reason = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:  # a rule between settings: its message names them
        return f"invalid settings: {reason}"
    return f"invalid setting CONTACTS_API_{str(error['loc'][0]).upper()}: {reason}"
