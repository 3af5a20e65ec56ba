"""webhooks: subscriptions, the outbox and the delivery log

ix_webhook_endpoint_account_id: the outbox writer looks up an account's subscriptions on every
contact change, and GET /v1/webhooks lists them; (account_id, id) serves both.
ix_webhook_message_pending: partial index on pending messages (endpoint_id, id), so the head of
each endpoint's queue (its oldest pending message) is one index probe for the dispatcher's
claim; delivered and failed messages cost it nothing.
uq_webhook_message_webhook_id: the `webhook-id` is unique, and redelivery finds a message by it.
ix_webhook_attempt_account_id / ix_webhook_attempt_endpoint_id: the delivery log, newest first,
for an account or for one of its webhooks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:29:46.760154
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacts_api.storage.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column(
            "previous_secret_expires_at",
            contacts_api.storage.types.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "created_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "disabled_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("disabled_reason", sa.String(length=200), nullable=True),
        sa.Column(
            "failing_since", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column(
            "lease_expires_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_webhook_endpoint_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoint")),
    )
    with op.batch_alter_table("webhook_endpoint", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_endpoint_account_id", ["account_id", "id"], unique=False)

    op.create_table(
        "webhook_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "next_attempt_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "first_attempt_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "completed_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_webhook_message_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoint.id"],
            name=op.f("fk_webhook_message_endpoint_id_webhook_endpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_message")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_webhook_message_webhook_id")),
    )
    with op.batch_alter_table("webhook_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_message_pending",
            ["endpoint_id", "id"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column(
            "attempted_at", contacts_api.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("response_snippet", sa.String(length=1024), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_webhook_attempt_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoint.id"],
            name=op.f("fk_webhook_attempt_endpoint_id_webhook_endpoint"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["webhook_message.id"],
            name=op.f("fk_webhook_attempt_message_id_webhook_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempt")),
    )
    with op.batch_alter_table("webhook_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_attempt_account_id", ["account_id", "id"], unique=False)
        batch_op.create_index("ix_webhook_attempt_endpoint_id", ["endpoint_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempt_endpoint_id")
        batch_op.drop_index("ix_webhook_attempt_account_id")

    op.drop_table("webhook_attempt")
    with op.batch_alter_table("webhook_message", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_message_pending",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.drop_table("webhook_message")
    with op.batch_alter_table("webhook_endpoint", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_endpoint_account_id")

    op.drop_table("webhook_endpoint")
