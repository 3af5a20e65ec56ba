"""SQLite: inserts into contact are counted by the writing statement's caller, not a trigger

Migration 0005 kept contact_live_count with row triggers. On SQLite a row trigger on INSERT
costs more than its own upsert: any trigger makes every INSERT keep a statement journal, a
copy of each page the row touches (the table and its 12 indexes) before it is changed.
Measured here, 100,000 rows by one executemany (WAL, synchronous=FULL, 64 MB cache, the
table's 12 indexes), best of 3: 41,212 rows/s with the insert trigger, 42,739 with a
trigger whose WHEN clause skips it (so the upsert is not the cost), 65,757 without any
INSERT trigger; the import went from 21,400 to 30,000 rows/s.

So on SQLite the application adds what it inserted, once per statement and in the same
transaction (contacts/live_count.py: every insert into `contact` goes through its
callers). Deletes and the updates that move
a contact in or out of the count (soft delete, undelete, another account) stay with the
triggers, which only such statements fire. What no longer counts on SQLite is a row
inserted by hand from outside the server; `contacts-api db recount` rebuilds the counts.

PostgreSQL is unchanged: its statement-level triggers cost one upsert per statement.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 22:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

INSERT_TRIGGER = """
    CREATE TRIGGER contact_live_count_insert AFTER INSERT ON contact
    FOR EACH ROW WHEN NEW.deleted_at IS NULL
    BEGIN
        INSERT INTO contact_live_count (account_id, slot, live) VALUES (NEW.account_id, 0, 1)
        ON CONFLICT (account_id, slot) DO UPDATE SET live = live + 1;
    END
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER contact_live_count_insert")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(INSERT_TRIGGER)
