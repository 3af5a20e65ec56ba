"""First start: an account, a user, the seed page's event and a key, so its curl works as is."""

from __future__ import annotations

import ipaddress
import json
import shlex
import sys

from contacts_api.accounts import repository as accounts_repo
from contacts_api.accounts import service as accounts
from contacts_api.events import service as events
from contacts_api.logging import logs_as_json
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.timeutil import utcnow

NO_ACCOUNT_HINT = (
    "No account yet. Serving beyond this machine, the first start makes none and prints no "
    "key (logs keep what is printed): create one with `contacts-api accounts create NAME`, "
    "then a key with `contacts-api keys create --account NAME`."
)
DEFAULT_ACCOUNT = "default"
DEFAULT_OWNER = "owner@localhost"
SEED_BODY = (
    '{"firstName":"Jane","lastName":"Doe","email":"jane.doe@example.com",'
    '"phoneNumber":"+15551234567","status":"POTENTIAL","tag":"lead-2024",'
    '"joinedTime":"2024-01-15T10:00:00.000Z","eventName":"Product Demo",'
    '"utm":"utm_source=google&utm_medium=cpc","country":"US","timeZone":"America/New_York",'
    '"ipAddress":"192.168.1.1","referrerUrl":"https://example.com/signup"}'
)


def is_loopback(host: str) -> bool:
    """Whether `--host` serves this machine only (`make run`'s 127.0.0.1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def bootstrap_first_run(settings: Settings, host: str, port: int) -> None:
    """When there is no account yet, create the default one and print its key once.

    Only on a loopback address: a server others can reach is a deployment, whose stderr a
    service manager or log shipper keeps, and a key printed there was a standing credential
    in the logs. It gets a hint instead (the CLI makes accounts and keys).

    With JSON logs, each is one JSON line among the others (a log shipper reading them met
    lines of plain text): the key in `api_key`, the curl line in `try_it`."""
    as_json = logs_as_json(settings)
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        async with db.transaction() as conn:
            if await accounts_repo.any_account(conn):
                return
            if not is_loopback(host):
                _say(NO_ACCOUNT_HINT, as_json)
                return
            now = utcnow()
            await accounts.create_account(conn, DEFAULT_ACCOUNT, DEFAULT_OWNER, now)
            await events.create_event(
                conn, DEFAULT_ACCOUNT, "Product Demo", now, link_prefix="default/product-demo"
            )
            key = await accounts.create_key(conn, DEFAULT_ACCOUNT, now)
    finally:
        await db.dispose()
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host  # noqa: S104
    created = (
        f"First start: created account {DEFAULT_ACCOUNT!r} (user {DEFAULT_OWNER}) and event "
        "'Product Demo'"
    )
    try_it = (
        f"curl --request POST --url http://{shown_host}:{port}/v1/contacts "
        f"--header {shlex.quote('Authorization: Bearer ' + key)} "
        f"--header 'Content-Type: application/json' --data {shlex.quote(SEED_BODY)}"
    )
    if as_json:
        _say(f"{created}; API key shown once, keep it", True, api_key=key, try_it=try_it)
    else:
        _say(f"\n{created}.\nAPI key (shown once, keep it): {key}\n\nTry it:\n{try_it}\n", False)


def _say(message: str, as_json: bool, **fields: str) -> None:
    """To stderr whatever the log level (a key shown once must not be filtered out); with
    JSON logs as a line of the same shape as theirs."""
    if as_json:
        line = {
            "event": message,
            **fields,
            "level": "warning",
            "logger": __name__,
            "timestamp": utcnow().isoformat().replace("+00:00", "Z"),
        }
        message = json.dumps(line)
    print(message, file=sys.stderr, flush=True)
