"""idempotency records

One row per (account, Idempotency-Key): the request's fingerprint, and once the first
request has finished, its answer (replayed byte for byte for 24 hours).

- uq_idempotency_record_account_id_key: the claim. The first request inserts the row; a
  concurrent duplicate's insert conflicts, which is how it learns it must answer 409.
- ix_idempotency_record_expires_at: purging expired records without a full scan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:46:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from contacts_api.storage.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_idempotency_record_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_record")),
        sa.UniqueConstraint("account_id", "key", name=op.f("uq_idempotency_record_account_id_key")),
    )
    op.create_index("ix_idempotency_record_expires_at", "idempotency_record", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_record_expires_at", table_name="idempotency_record")
    op.drop_table("idempotency_record")
