"""`contacts-api webhooks ...`: subscriptions from the command line, and the dispatcher alone."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from contacts_api.accounts.service import account_id_by_name
from contacts_api.errors import AppError, UserError, ValidationFailed
from contacts_api.paging import MAX_ID
from contacts_api.settings import Settings
from contacts_api.timeutil import utcnow
from contacts_api.webhooks import retention, service
from contacts_api.webhooks.schemas import EVENT_NAMES, WebhookRead, WebhookWithSecret

webhooks_app = typer.Typer(no_args_is_help=True, help="Webhook subscriptions and delivery.")

Account = Annotated[str, typer.Option(help="Account name")]
# Ids are 32-bit on PostgreSQL: a bigger one is a usage error (exit 2), not an OverflowError.
WebhookId = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="Webhook id (see `list`)")]


def _explain(error: AppError) -> UserError:
    if isinstance(error, ValidationFailed):
        details = [f"{k}: {'; '.join(v)}" for k, v in error.field_errors.items()]
        return UserError(", ".join(details + error.form_errors))
    return UserError(error.message)


@webhooks_app.command("create")
def webhooks_create(
    account: Account,
    url: Annotated[str, typer.Option(help="http(s) URL that receives the POSTs")],
    event: Annotated[
        list[str] | None,
        typer.Option(help=f"Event to send (repeatable; default all): {', '.join(EVENT_NAMES)}"),
    ] = None,
) -> None:
    """Subscribe a URL; prints {"id":…,"secret":"whsec_…"} (the secret is shown only here)."""
    from contacts_api.cli import in_transaction

    settings = Settings()

    async def work(conn: AsyncConnection) -> WebhookWithSecret:
        try:
            subscription = service.parse_webhook_create(
                {"url": url, "events": event or list(EVENT_NAMES)}
            )
            await service.check_destination(url, allow_private=settings.webhooks_allow_private)
            account_id = await account_id_by_name(conn, account)
            return await service.create_webhook(conn, account_id, subscription, utcnow())
        except AppError as exc:
            raise _explain(exc) from None

    created = in_transaction(work)
    print(json.dumps({"id": created.id, "secret": created.secret}))


@webhooks_app.command("list")
def webhooks_list(account: Account) -> None:
    """The account's webhooks (never their secrets)."""
    from contacts_api.cli import in_transaction, table_console

    async def work(conn: AsyncConnection) -> list[WebhookRead]:
        return await service.list_webhooks(conn, await account_id_by_name(conn, account))

    table = Table("id", "events", "created", "disabled")
    table.add_column("url", overflow="fold")  # on a narrow terminal wrapped, never cut short
    for row in in_transaction(work):
        disabled = f"{row.disabledAt} ({row.disabledReason})" if row.disabledAt else "-"
        table.add_row(str(row.id), ", ".join(row.events), row.createdAt, disabled, row.url)
    table_console().print(table)


@webhooks_app.command("delete")
def webhooks_delete(account: Account, webhook_id: WebhookId) -> None:
    """Unsubscribe (pending messages are dropped)."""
    from contacts_api.cli import in_transaction

    async def work(conn: AsyncConnection) -> None:
        try:
            account_id = await account_id_by_name(conn, account)
            await service.delete_webhook(conn, account_id, webhook_id)
        except AppError as exc:
            raise _explain(exc) from None

    in_transaction(work)


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(account: Account, webhook_id: WebhookId) -> None:
    """Prints the new secret; the old one keeps signing beside it for 24 hours."""
    from contacts_api.cli import in_transaction

    async def work(conn: AsyncConnection) -> WebhookWithSecret:
        try:
            account_id = await account_id_by_name(conn, account)
            return await service.rotate_secret(conn, account_id, webhook_id, utcnow())
        except AppError as exc:
            raise _explain(exc) from None

    print(in_transaction(work).secret)


@webhooks_app.command("enable")
def webhooks_enable(
    account: Account,
    webhook_id: WebhookId,
    redeliver_failed: Annotated[
        bool,
        typer.Option(
            "--redeliver-failed",
            help="Also queue again every failed message it still has (those failed when it "
            "was disabled included)",
        ),
    ] = False,
) -> None:
    """Enable a disabled webhook in place; prints how many messages were queued again."""
    from contacts_api.cli import in_transaction

    async def work(conn: AsyncConnection) -> int:
        try:
            account_id = await account_id_by_name(conn, account)
            _, requeued = await service.enable_webhook(
                conn, account_id, webhook_id, redeliver_failed, utcnow()
            )
            return requeued
        except AppError as exc:
            raise _explain(exc) from None

    print(json.dumps({"id": webhook_id, "requeued": in_transaction(work)}))


@webhooks_app.command("prune")
def webhooks_prune(
    older_than_days: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=36_500,
            help="Keep what finished within this many days "
            "(default: CONTACTS_API_WEBHOOKS_RETENTION_DAYS)",
        ),
    ] = None,
) -> None:
    """Delete delivered and given-up messages, with their attempts, that finished before the
    retention period; pending ones stay. Prints {"deleted": N}. Dispatchers also do it
    hourly."""
    from contacts_api.cli_run import fail, with_database
    from contacts_api.storage.engine import Database

    days = Settings().webhooks_retention_days if older_than_days is None else older_than_days
    if days == 0 and older_than_days is None:
        raise fail(
            "retention is off (CONTACTS_API_WEBHOOKS_RETENTION_DAYS=0): give --older-than-days"
        )

    async def work(db: Database) -> int:
        return await retention.prune(db, utcnow(), timedelta(days=days))

    print(json.dumps({"deleted": with_database(work)}))


@webhooks_app.command("dispatch")
def webhooks_dispatch() -> None:
    """Run the delivery worker on its own until SIGINT/SIGTERM (logs on stderr)."""
    from contacts_api.cli import require_current_schema
    from contacts_api.logging import configure_logging
    from contacts_api.webhooks.dispatcher import run_dispatcher

    settings = Settings()
    require_current_schema(settings)
    configure_logging(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_dispatcher(settings, stop)

    asyncio.run(main())
