"""initial schema: accounts, users, API keys, events, tags, contacts

uq_contact_account_email_key is what makes upsert-by-email race-free: one live contact per
(account, lower(email)). ix_contact_account_id serves the default newest-first listing.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 12:19:23.368480
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from contacts_api.storage.types import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rate_limit_points", sa.Integer(), nullable=True),
        sa.Column("rate_limit_window", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("name", name=op.f("uq_account_name")),
    )
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_app_user_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("account_id", "email", name=op.f("uq_app_user_account_id_email")),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("link_prefix", sa.String(length=255), nullable=True),
        sa.Column("event_type", sa.String(length=50), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_event_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint(
            "account_id", "link_prefix", name=op.f("uq_event_account_id_link_prefix")
        ),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_account_name", ["account_id", "name"], unique=False)

    op.create_table(
        "tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_tag_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_tag_account_id_name")),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("display_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_api_key_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_api_key_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("email_key", sa.String(length=255), nullable=True),
        sa.Column("first_name", sa.String(length=25), nullable=True),
        sa.Column("last_name", sa.String(length=25), nullable=True),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column("secondary_email", sa.String(length=255), nullable=True),
        sa.Column("secondary_phone_number", sa.String(length=20), nullable=True),
        sa.Column("preview_id", sa.String(length=20), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("blocked_by_recaptcha", sa.Boolean(), nullable=False),
        sa.Column("blocked_id", sa.Integer(), nullable=True),
        sa.Column("joined_time", UTCDateTime(timezone=True), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("time_zone", sa.String(length=50), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("referrer_url", sa.String(length=500), nullable=True),
        sa.Column("tracking", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_contact_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], name=op.f("fk_contact_event_id_event")),
        sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], name=op.f("fk_contact_tag_id_tag")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_contact_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint("preview_id", name=op.f("uq_contact_preview_id")),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index("ix_contact_account_id", ["account_id", "id"], unique=False)
        batch_op.create_index(
            "uq_contact_account_email_key",
            ["account_id", "email_key"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL AND email_key IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NULL AND email_key IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_contact_account_email_key",
            sqlite_where=sa.text("deleted_at IS NULL AND email_key IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NULL AND email_key IS NOT NULL"),
        )
        batch_op.drop_index("ix_contact_account_id")

    op.drop_table("contact")
    op.drop_table("api_key")
    op.drop_table("tag")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_account_name")

    op.drop_table("event")
    op.drop_table("app_user")
    op.drop_table("account")
