"""The database tables. Content (bodies, attachments, originals, connector secrets) is stored encrypted;
the metadata that search needs (sender, title, dates, CVR) stays clear."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned as aware UTC on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC time")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _ts(*, nullable: bool) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable))


class MessageStatus(StrEnum):
    COLLECTED = "collected"
    ROUTED = "routed"
    HELD = "held"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    # Gone: retention purged a letter that never reached an outcome, or a data subject had it erased.
    # Both are tombstones that no command acts on (migration 0005).
    EXPIRED = "expired"
    ERASED = "erased"


GONE_STATUSES = frozenset({MessageStatus.EXPIRED, MessageStatus.ERASED})


class MailboxStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # its circuit is open after repeated failures; polled again at next_poll_at
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"  # cannot start (a secret missing, settings the connector refuses); last_error says why
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    HELD = "held"


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    cvr: str = Field(max_length=8, unique=True, index=True)
    name: str


class Mailbox(SQLModel, table=True):
    __tablename__ = "mailbox"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    name: str
    provider: str
    status: str = Field(default=MailboxStatus.ACTIVE)
    cursor: str | None = None
    connector_state: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    credentials_fingerprint: str | None = None
    last_success_at: datetime | None = _ts(nullable=True)
    last_error: str | None = None
    consecutive_failures: int = 0
    next_poll_at: datetime | None = _ts(nullable=True)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _ts(nullable=True)


class Message(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "provider_message_id", name="uq_message_provider_id"),
        # Held letters in queue order; the organisation in it too, so the queue's and health page's
        # counts of held letters per organisation read the index alone (migration 0008).
        Index("ix_message_status_received", "status", "received_at", "id", "organisation_cvr"),
        # Both cover every column trace search filters on, in time order (one within an organisation,
        # as the API always asks), so a search or a retention scan never reads the rows with their
        # sealed content. They replace ix_message_org_received (migration 0002).
        Index("ix_message_org_search", "organisation_cvr", "received_at", "mailbox_id", "provider", "status",
              "sender_id", "sender_name", "title", "id"),
        Index("ix_message_search", "received_at", "organisation_cvr", "mailbox_id", "provider", "status",
              "sender_id", "sender_name", "title", "id"),
        # Recipient and channel filters find ids in the outbox, then sort them by time from here.
        Index("ix_message_id_received", "id", "received_at"),
        # The newest message of each mailbox (is it quiet?) is one index seek per mailbox.
        Index("ix_message_mailbox_received", "mailbox_id", "received_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    # Indexed by ix_message_mailbox_received (which replaced ix_message_mailbox_id in migration 0002).
    mailbox_id: int = Field(foreign_key="mailbox.id")
    organisation_cvr: str = Field(max_length=8)
    provider: str
    provider_message_id: str = Field(max_length=255)
    status: str = Field(default=MessageStatus.COLLECTED)
    status_reason: str | None = None
    # Who routed it by its latest decision (rule, model, hand, default; None: not routed), kept by the
    # database for the statistics' roll-up (core/storage/daily_counts.py, migration 0008); never set here.
    routed_by: str | None = Field(default=None, max_length=16)
    message_type: str | None = None
    format: str | None = None
    title: str = ""
    sender_id: str | None = Field(default=None, index=True)
    sender_name: str | None = Field(default=None, index=True)
    recipient_id: str | None = None
    sent_at: datetime | None = _ts(nullable=True)
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    acknowledged_at: datetime | None = _ts(nullable=True)
    # Acknowledgement intent, written before acting at the provider (migration 0004): a crash between
    # the provider's side and `acknowledged_at` is reconciled at the next poll from the sealed ref.
    ack_requested_at: datetime | None = _ts(nullable=True)
    ack_ref: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    raw_media_type: str | None = None
    # Encrypted: the normalized message (header, attention, text) as JSON, and the original bytes.
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _ts(nullable=True)
    # Set when retention purged the content: the row stays as a tombstone (no personal data) so
    # collection stays idempotent and statistics keep their counts (migration 0002).
    purged_at: datetime | None = _ts(nullable=True)


class Attachment(SQLModel, table=True):
    __tablename__ = "attachment"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    message_id: str = Field(foreign_key="message.id", index=True, max_length=32)
    document_index: int
    file_index: int
    document_kind: str
    name: str
    media_type: str
    size: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RoutingDecision(SQLModel, table=True):
    __tablename__ = "routing_decision"

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(foreign_key="message.id", index=True, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    action: str
    decided_by: str
    rule: str | None = None
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    explanation: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    actor: str | None = None


class Delivery(SQLModel, table=True):
    """The outbox: one row per message × recipient × channel, written in the routing transaction."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("message_id", "recipient", "channel", name="uq_delivery_target"),
        Index("ix_delivery_status_next", "status", "next_attempt_at"),
        # Trace search by recipient and channel, queue depth and age per channel, from the index
        # alone (migration 0002).
        Index("ix_delivery_recipient", "recipient", "message_id"),
        Index("ix_delivery_channel_status", "channel", "status", "created_at", "message_id"),
        # The outbox backlog of some organisations per channel, from the index alone (migration 0008).
        Index("ix_delivery_status_org_channel", "status", "organisation_cvr", "channel"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    message_id: str = Field(foreign_key="message.id", index=True, max_length=32)
    organisation_cvr: str = Field(max_length=8)
    recipient: str
    channel: str
    status: str = Field(default=DeliveryStatus.PENDING)
    idempotency_key: str = Field(unique=True, max_length=255)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    delivered_at: datetime | None = _ts(nullable=True)
    # When the current attempt's send to the relay began (migration 0004); None while the row waits,
    # so a crash before it charges nothing and one after it may have completed the send.
    send_started_at: datetime | None = _ts(nullable=True)
    last_reply: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _ts(nullable=True)


class TraceEvent(SQLModel, table=True):
    """One step in a message's life. `detail` holds ids and reasons, never bodies or CPR numbers."""

    __tablename__ = "trace_event"
    __table_args__ = (Index("ix_trace_message_at", "message_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: str | None = Field(default=None, foreign_key="message.id", max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False, index=True))
    kind: str = Field(index=True)
    actor: str
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ApprovalStatus(StrEnum):
    INVITED = "invited"
    CONFIRMED = "confirmed"
    APPROVED = "approved"
    REVOKED = "revoked"


class RecipientApproval(SQLModel, table=True):
    """Approval of one recipient of the recipients file: invited → confirmed → approved, or revoked.

    The one-time confirmation token is stored as its SHA-256 only; the approval binds the e-mail
    address that confirmed and the fingerprint of the key checked at approval (migration 0003).
    """

    __tablename__ = "recipient_approval"
    __table_args__ = (UniqueConstraint("organisation_cvr", "recipient", name="uq_recipient_approval"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_cvr: str = Field(max_length=8)
    recipient: str = Field(max_length=64)
    email: str | None = None
    status: str = Field(default=ApprovalStatus.INVITED)
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    expires_at: datetime | None = _ts(nullable=True)
    invited_at: datetime | None = _ts(nullable=True)
    confirmed_at: datetime | None = _ts(nullable=True)
    approved_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)
    actor: str | None = None
    key_fingerprint: str | None = Field(default=None, max_length=64)
    key_checked_at: datetime | None = _ts(nullable=True)
    key_expires_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class NoticeStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Notice(SQLModel, table=True):
    """The notices outbox: one row per notice to people (administrators, processors), sent by e-mail.

    The row is the intent, written in the transaction that decided to notify; `key` makes deciding
    twice harmless, and a row marked sent is never sent again (migration 0005). The text carries
    counts, ages, letter ids and (if the organisation allows) senders' names, never letter content.
    """

    __tablename__ = "notice"
    __table_args__ = (Index("ix_notice_status_next", "status", "next_attempt_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    key: str = Field(max_length=255, unique=True)
    organisation_cvr: str = Field(max_length=8)
    kind: str = Field(max_length=32)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str
    text: str
    status: str = Field(default=NoticeStatus.PENDING)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    sent_at: datetime | None = _ts(nullable=True)
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = _ts(nullable=True)


class NotificationPreference(SQLModel, table=True):
    """A recipient's own notification settings, over the recipients file's (migration 0011).

    `enabled` False stops notices and digests (never the encrypted letter of `notify = "letter"`).
    `address` is a separate notification address that was confirmed by a link mailed to it; a
    requested one waits in `pending_address` with the SHA-256 of its one-time token until then.
    """

    __tablename__ = "notification_preference"
    __table_args__ = (UniqueConstraint("organisation_cvr", "recipient", name="uq_notification_preference"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_cvr: str = Field(max_length=8)
    recipient: str = Field(max_length=64)
    enabled: bool = True
    address: str | None = None
    pending_address: str | None = None
    pending_token_hash: str | None = Field(default=None, max_length=64, unique=True)
    pending_expires_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    updated_by: str | None = None
