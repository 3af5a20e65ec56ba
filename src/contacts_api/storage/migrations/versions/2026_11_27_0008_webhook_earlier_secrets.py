"""webhook_endpoint.earlier_secrets: every replaced secret signs for its whole day

`previous_secret` held one replaced secret: a second rotation within 24 hours dropped the
first replaced secret at once, and a receiver not yet switched from it failed to verify
every delivery. Secrets replaced before the previous one, and still within their day, are
kept here (webhooks/rotation.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 19:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_endpoint", sa.Column("earlier_secrets", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_endpoint", "earlier_secrets")
