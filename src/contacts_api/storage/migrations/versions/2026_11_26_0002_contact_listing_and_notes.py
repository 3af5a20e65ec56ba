"""contact listing indexes and notes

Every listing index is partial on `deleted_at IS NULL` (soft-deleted contacts are never
listed) and ends with `id`, the listing's tie-break, so that a page is an ordered walk of one
index: the listing first picks the page's ids from the index alone (a deferred join), then
reads just those rows. That keeps deep pages cheap: skipping N entries walks N small index
entries instead of sorting and reading N whole contacts.

- ix_contact_live_id: orderColumn=id.
- ix_contact_live_created_at: the default order (newest first) and orderColumn=createdAt.
- ix_contact_live_updated_at: orderColumn=updatedAt (sync clients polling for changes).
- ix_contact_live_joined_time: orderColumn=joinedTime, and timeFrom/timeTo ranges.
- ix_contact_live_first_name / _last_name / _email: those orderColumns. On PostgreSQL they
  are built NULLS FIRST so that "NULL sorts lowest" (SQLite's rule, used on both dialects)
  is an index walk there too.
- ix_contact_live_event_id: the eventIds filter.
- ix_contact_live_status: the statuses filter.
- ix_note_contact_id_id: a contact's notes, newest first, page by page.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from contacts_api.storage.types import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")
ORDER_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "joined_time",
    "first_name",
    "last_name",
    "email",
)
NULLABLE = {"first_name", "last_name", "email"}
FILTER_COLUMNS = ("event_id", "status")


def _columns(column: str, postgresql: bool) -> list[sa.ColumnElement[object] | str]:
    if column == "id":
        return ["account_id", "id"]
    middle: sa.ColumnElement[object] | str = column
    if postgresql and column in NULLABLE:
        middle = sa.nulls_first(sa.column(column))
    return ["account_id", middle, "id"]


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for column in ORDER_COLUMNS + FILTER_COLUMNS:
        op.create_index(
            f"ix_contact_live_{column}",
            "contact",
            _columns(column, postgresql),
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )
    op.create_table(
        "note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_note_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_note_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_note_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_note")),
    )
    op.create_index("ix_note_contact_id_id", "note", ["contact_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_note_contact_id_id", table_name="note")
    op.drop_table("note")
    for column in ORDER_COLUMNS + FILTER_COLUMNS:
        op.drop_index(f"ix_contact_live_{column}", table_name="contact")
