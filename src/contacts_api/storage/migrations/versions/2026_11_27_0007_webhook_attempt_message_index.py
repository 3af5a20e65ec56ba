"""webhook_attempt(message_id): deleting a message no longer scans the whole delivery log

A message's attempts go with it (ON DELETE CASCADE), and PostgreSQL found them by scanning
webhook_attempt once per deleted message: deleting a webhook with 20,000 delivered messages
(one attempt each) took 8.75 s, growing with the square of its history (5,000: 0.45 s),
and pruning old messages would have paid the same. With this index: 0.15 s. SQLite deleted
them in 0.09 s either way.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 19:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_webhook_attempt_message_id", "webhook_attempt", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempt_message_id", table_name="webhook_attempt")
