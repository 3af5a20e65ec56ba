"""First start: an account, a user, the seed page's event and a key, so its curl works as is."""

from __future__ import annotations

import ipaddress
import shlex
import sys

from contacts_api.accounts import repository as accounts_repo
from contacts_api.accounts import service as accounts
from contacts_api.events import service as events
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
    in the logs. It gets a hint instead (the CLI makes accounts and keys)."""
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        async with db.transaction() as conn:
            if await accounts_repo.any_account(conn):
                return
            if not is_loopback(host):
                print(NO_ACCOUNT_HINT, file=sys.stderr, flush=True)
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
    print(
        f"\nFirst start: created account {DEFAULT_ACCOUNT!r} (user {DEFAULT_OWNER}) and event "
        f"'Product Demo'.\nAPI key (shown once, keep it): {key}\n\nTry it:\n"
        f"curl --request POST --url http://{shown_host}:{port}/v1/contacts "
        f"--header {shlex.quote('Authorization: Bearer ' + key)} "
        f"--header 'Content-Type: application/json' --data {shlex.quote(SEED_BODY)}\n",
        file=sys.stderr,
        flush=True,
    )
