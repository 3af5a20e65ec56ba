"""Put a million contacts into an account fast, outside the HTTP path (driver-level bulk load)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import make_url

from contacts_api.contacts import live_count

COLUMNS = (
    "account_id", "user_id", "email", "email_key", "first_name", "last_name", "status",
    "phone_number", "preview_id", "blocked_by_recaptcha", "joined_time", "tracking",
    "created_at", "updated_at",
)  # fmt: skip
NAMES = ", ".join(COLUMNS)


def _rows(
    account_id: int, user_id: int, count: int, sqlite_times: bool
) -> Iterator[tuple[object, ...]]:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    tracking = json.dumps({"utm_source": "seed", "first_utm_source": "seed"})
    salt = secrets.token_hex(3)
    for i in range(count):
        moment = start + timedelta(seconds=i * 20)
        when: object = moment.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite_times else moment
        email = f"seed.{salt}.{i}@example.com"
        yield (
            account_id, user_id, email, email, f"First{i % 997}", f"Last{i % 991}",
            ("POTENTIAL", "QUALIFIED", "DISQUALIFIED")[i % 3], f"+1555{i:07d}",
            f"contact_{salt}{i:06d}", False, when, tracking, when, when,
        )  # fmt: skip


def seed_contacts(database_url: str, account_id: int, user_id: int, count: int) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", timeout=60)
        # As the server's own connections (storage/engine.py).
        conn.execute("PRAGMA temp_store=MEMORY")
        with conn:
            conn.executemany(
                f"INSERT INTO contact ({NAMES}) VALUES ({', '.join('?' * len(COLUMNS))})",
                _rows(account_id, user_id, count, sqlite_times=True),
            )
            # What the server's writers do on SQLite (contacts/live_count.py): count them.
            conn.execute(live_count.ADD_SQL, (account_id, count))
        conn.execute("ANALYZE")
        conn.close()
        return
    import psycopg

    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY contact ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in _rows(account_id, user_id, count, sqlite_times=False):
                copy.write_row(row)
        conn.execute("ANALYZE contact")
