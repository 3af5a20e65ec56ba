"""`contacts-api webhooks create|list|rotate-secret|delete` against a real database."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from contacts_api.cli import app

runner = CliRunner()


def run(database_url: str, *args: str, allow_private: bool = True) -> tuple[int, str, str]:
    env = {
        "CONTACTS_API_DATABASE_URL": database_url,
        "CONTACTS_API_WEBHOOKS_ALLOW_PRIVATE": "1" if allow_private else "0",
        "COLUMNS": "200",
    }
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_webhook_commands_manage_subscriptions(database_url: str) -> None:
    assert run(database_url, "accounts", "create", "acme")[0] == 0
    url = "http://127.0.0.1:9/hook"

    code, out, err = run(database_url, "webhooks", "create", "--account", "acme", "--url", url)
    assert code == 0, err
    created = json.loads(out)
    assert created["secret"].startswith("whsec_")

    long_url = "http://127.0.0.1:9/" + "hooks/" * 30
    run(database_url, "webhooks", "create", "--account", "acme", "--url", long_url)
    code, out, _ = run(database_url, "webhooks", "list", "--account", "acme")
    assert code == 0 and url in out and created["secret"] not in out
    # Piped, nothing is cut short or wrapped: the events, the time and a long URL, whole.
    assert "newContactCreated" in out
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out)
    assert long_url in out

    code, out, _ = run(
        database_url, "webhooks", "rotate-secret", "--account", "acme", str(created["id"])
    )
    assert code == 0 and out.strip().startswith("whsec_") and out.strip() != created["secret"]

    code, _, _ = run(database_url, "webhooks", "delete", "--account", "acme", str(created["id"]))
    assert code == 0
    code, _, err = run(database_url, "webhooks", "delete", "--account", "acme", str(created["id"]))
    assert code == 1 and "Webhook not found" in err


def test_cli_refuses_loopback_without_the_setting(database_url: str) -> None:
    assert run(database_url, "accounts", "create", "acme")[0] == 0
    code, out, err = run(
        database_url,
        "webhooks",
        "create",
        "--account",
        "acme",
        "--url",
        "http://127.0.0.1:9/hook",
        "--event",
        "contact.created",
        allow_private=False,
    )
    assert code == 1 and out == ""
    assert "does not resolve to a public address" in err


def test_out_of_range_ids_are_usage_errors(database_url: str) -> None:
    for args in (
        ("webhooks", "delete", "--account", "acme", "99999999999999999999"),
        ("webhooks", "rotate-secret", "--account", "acme", "2147483648"),
        ("webhooks", "delete", "--account", "acme", "0"),
        ("keys", "revoke", "99999999999999999999"),
        ("keys", "revoke", "0"),
    ):
        code, _out, err = run(database_url, *args)
        assert code == 2, args
        assert "Invalid value for" in err and "Traceback" not in err, args


def test_keys_revoke_help_tells_when_revocation_takes_effect(database_url: str) -> None:
    code, out, _err = run(database_url, "keys", "revoke", "--help")
    assert code == 0
    assert "CONTACTS_API_KEY_CACHE_SECONDS" in out and "at once" not in out


def test_an_unreachable_database_is_one_line_and_exit_1() -> None:
    """asyncpg's refused connection is an OSError that SQLAlchemy does not wrap."""
    unreachable = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    for args in (("webhooks", "list", "--account", "acme"), ("webhooks", "prune")):
        code, out, err = run(unreachable, *args)
        assert (code, out) == (1, ""), err
        assert err.startswith("error: database unavailable: ") and "Traceback" not in err
        assert err.count("\n") == 1


def test_webhooks_enable_enables_a_disabled_webhook(database_url: str) -> None:
    import sqlalchemy as sa

    from contacts_api.storage.drivers import sync_url
    from contacts_api.storage.models import webhook_endpoint_table

    assert run(database_url, "accounts", "create", "acme")[0] == 0
    code, out, err = run(
        database_url, "webhooks", "create", "--account", "acme", "--url", "http://127.0.0.1:9/h"
    )
    assert code == 0, err
    webhook_id = json.loads(out)["id"]
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:  # as the dispatcher leaves it after a 410
            conn.execute(
                sa.update(webhook_endpoint_table).values(
                    disabled_at=sa.func.now(), disabled_reason="receiver answered 410 Gone"
                )
            )
    finally:
        engine.dispose()
    assert "410 Gone" in run(database_url, "webhooks", "list", "--account", "acme")[1]

    args = ("webhooks", "enable", "--account", "acme", str(webhook_id), "--redeliver-failed")
    code, out, err = run(database_url, *args)
    assert code == 0, err
    assert json.loads(out) == {"id": webhook_id, "requeued": 0}
    assert "410 Gone" not in run(database_url, "webhooks", "list", "--account", "acme")[1]
    code, _, err = run(database_url, "webhooks", "enable", "--account", "acme", "999")
    assert code == 1 and "Webhook not found" in err
