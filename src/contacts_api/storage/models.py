"""Every table, as SQLAlchemy 2 typed models. Queries use Core statements on `Model.__table__`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contacts_api.storage.types import UTCDateTime

# The predicate of the partial unique index behind upserts; an ON CONFLICT clause must repeat
# it word for word to be matched with that index (contacts/repository.py, json_insert.py).
LIVE_EMAIL_KEY = "deleted_at IS NULL AND email_key IS NOT NULL"
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


class Account(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    # Per-account rate limit override; NULL means the server's CONTACTS_API_RATE_LIMIT.
    rate_limit_points: Mapped[int | None]
    rate_limit_window: Mapped[int | None]
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "app_user"
    __table_args__ = (sa.UniqueConstraint("account_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(sa.String(255))
    first_name: Mapped[str | None] = mapped_column(sa.String(100))
    last_name: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("app_user.id", ondelete="CASCADE"))
    # SHA-256 of the whole key (prefix included); the plaintext is never stored.
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # The first characters, enough to recognise a key in `keys list`, never to use it.
    display_prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (
        sa.Index("ix_event_account_name", "account_id", "name"),
        sa.UniqueConstraint("account_id", "link_prefix"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(255))
    link_prefix: Mapped[str | None] = mapped_column(sa.String(255))
    event_type: Mapped[str] = mapped_column(sa.String(50))
    created_at: Mapped[datetime]


class Tag(Base):
    __tablename__ = "tag"
    __table_args__ = (sa.UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (
        # One live contact per email per account: the guarantee behind race-free upserts.
        # email_key is lower(email), or NULL when the contact takes no part in de-duplication.
        sa.Index(
            "uq_contact_account_email_key",
            "account_id",
            "email_key",
            unique=True,
            sqlite_where=sa.text(LIVE_EMAIL_KEY),
            postgresql_where=sa.text(LIVE_EMAIL_KEY),
        ),
        sa.Index("ix_contact_account_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("app_user.id"))
    email: Mapped[str | None] = mapped_column(sa.String(255))
    email_key: Mapped[str | None] = mapped_column(sa.String(255))
    first_name: Mapped[str | None] = mapped_column(sa.String(25))
    last_name: Mapped[str | None] = mapped_column(sa.String(25))
    status: Mapped[str] = mapped_column(sa.String(50))
    phone_number: Mapped[str | None] = mapped_column(sa.String(20))
    secondary_email: Mapped[str | None] = mapped_column(sa.String(255))
    secondary_phone_number: Mapped[str | None] = mapped_column(sa.String(20))
    preview_id: Mapped[str] = mapped_column(sa.String(20), unique=True)
    tag_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tag.id"))
    event_id: Mapped[int | None] = mapped_column(sa.ForeignKey("event.id"))
    blocked_by_recaptcha: Mapped[bool] = mapped_column(default=False)
    blocked_id: Mapped[int | None]
    joined_time: Mapped[datetime]
    country: Mapped[str | None] = mapped_column(sa.String(2))
    time_zone: Mapped[str | None] = mapped_column(sa.String(50))
    ip_address: Mapped[str | None] = mapped_column(sa.String(45))
    referrer_url: Mapped[str | None] = mapped_column(sa.String(500))
    tracking: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class ContactLiveCount(Base):
    """How many live contacts an account has: SUM(live) over its rows (migration 0005).

    Written by triggers on `contact`, except SQLite inserts, which their writers count
    (contacts/live_count.py, migration 0006); on PostgreSQL spread over up to 16 rows
    ("slots") per account so that concurrent writers do not queue on one row lock.
    """

    __tablename__ = "contact_live_count"

    account_id: Mapped[int] = mapped_column(
        sa.ForeignKey("account.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    live: Mapped[int] = mapped_column(sa.BigInteger)


class WebhookEndpoint(Base):
    """A subscription: where an account's contact events go, and how they are signed."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (sa.Index("ix_webhook_endpoint_account_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(sa.String(2000))
    # Canonical event names (newContactCreated, contactDetailChanged, contactDeleted).
    events: Mapped[list[str]] = mapped_column(sa.JSON)
    # Stored in the clear: the HMAC needs the key itself (it is shown to the client once).
    secret: Mapped[str] = mapped_column(sa.String(100))
    previous_secret: Mapped[str | None] = mapped_column(sa.String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    # Secrets replaced before `previous_secret` and still signing (webhooks/rotation.py).
    earlier_secrets: Mapped[list[dict[str, str]] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(200))
    # Start of the current run of failed attempts; NULL after any success.
    failing_since: Mapped[datetime | None]
    # The dispatcher that drains this endpoint right now, and until when its claim holds.
    lease_owner: Mapped[str | None] = mapped_column(sa.String(64))
    lease_expires_at: Mapped[datetime | None]


class WebhookMessage(Base):
    """The outbox: one event for one endpoint, written in the transaction of the change."""

    __tablename__ = "webhook_message"
    __table_args__ = (
        # The head of each endpoint's queue (oldest pending message) in one index probe.
        sa.Index(
            "ix_webhook_message_pending",
            "endpoint_id",
            "id",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoint.id", ondelete="CASCADE")
    )
    # The `webhook-id` header: stable across retries, so receivers can de-duplicate.
    webhook_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(40))
    # The exact body sent (and signed) on every attempt.
    payload: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16))  # pending | delivered | failed
    attempt_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    first_attempt_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """The delivery log: one row per HTTP attempt."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (
        sa.Index("ix_webhook_attempt_account_id", "account_id", "id"),
        sa.Index("ix_webhook_attempt_endpoint_id", "endpoint_id", "id"),
        # A message's attempts, for the cascade when it is deleted (migration 0007).
        sa.Index("ix_webhook_attempt_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoint.id", ondelete="CASCADE")
    )
    message_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_message.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    latency_ms: Mapped[int]
    response_snippet: Mapped[str | None] = mapped_column(sa.String(1024))
    error: Mapped[str | None] = mapped_column(sa.String(500))
    outcome: Mapped[str] = mapped_column(sa.String(16))  # delivered | retrying | failed | disabled


account_table = cast(sa.Table, Account.__table__)
user_table = cast(sa.Table, User.__table__)
api_key_table = cast(sa.Table, ApiKey.__table__)
event_table = cast(sa.Table, Event.__table__)
tag_table = cast(sa.Table, Tag.__table__)
contact_table = cast(sa.Table, Contact.__table__)
contact_live_count_table = cast(sa.Table, ContactLiveCount.__table__)
webhook_endpoint_table = cast(sa.Table, WebhookEndpoint.__table__)
webhook_message_table = cast(sa.Table, WebhookMessage.__table__)
webhook_attempt_table = cast(sa.Table, WebhookAttempt.__table__)


class Note(Base):
    __tablename__ = "note"
    __table_args__ = (sa.Index("ix_note_contact_id_id", "contact_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(sa.ForeignKey("contact.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("app_user.id"))
    note: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]


class IdempotencyRecord(Base):
    """One Idempotency-Key of one account: the request's fingerprint and, once done, its answer."""

    __tablename__ = "idempotency_record"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "key"),
        sa.Index("ix_idempotency_record_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    # NULL while the first request runs; then the answer replayed to every retry.
    response_status: Mapped[int | None]
    response_headers: Mapped[list[list[str]] | None] = mapped_column(sa.JSON)
    response_body: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


note_table = cast(sa.Table, Note.__table__)
idempotency_table = cast(sa.Table, IdempotencyRecord.__table__)

# Listing indexes (see migration 0002 for why each exists). Partial on live rows so a page of
# the listing is read from the index alone; on PostgreSQL the migration builds the nullable
# text columns NULLS FIRST, matching the listing's "NULL sorts lowest" order on both dialects.
LIVE_CONTACT = sa.text("deleted_at IS NULL")
CONTACT_ORDER_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "joined_time",
    "first_name",
    "last_name",
    "email",
)
# The ordering columns, plus the two filters that narrow a listing most (event, status).
for _column in (*CONTACT_ORDER_COLUMNS, "event_id", "status"):
    sa.Index(
        f"ix_contact_live_{_column}",
        contact_table.c.account_id,
        *([] if _column == "id" else [contact_table.c[_column]]),
        contact_table.c.id,
        sqlite_where=LIVE_CONTACT,
        postgresql_where=LIVE_CONTACT,
    )
