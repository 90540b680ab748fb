"""The console's tables: local accounts, server-side sessions and the audit trail (migration 0006)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from core.storage.models import UtcDateTime, new_id, utcnow


class ConsoleUser(SQLModel, table=True):
    """A person who signs in to the console: one access profile, for every organisation granted.

    `password_hash` is an argon2 hash; `recipient` ties a delivery-profile account to the recipient id
    whose letters it may read. A disabled account cannot sign in and its sessions are ended.
    """

    __tablename__ = "console_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str
    profile: str = Field(max_length=32)
    organisations: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    recipient: str | None = Field(default=None, max_length=64)
    language: str = Field(default="da", max_length=8)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser. `id` is the SHA-256 of the cookie's token, so the table holds no usable token."""

    __tablename__ = "console_session"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="console_user.id", index=True)
    csrf: str = Field(max_length=64)
    address: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class AuditEvent(SQLModel, table=True):
    """Who did what, when and from where: sign-ins (failed ones too), placements, resends, downloads,
    setting and account changes. `detail` holds ids and outcomes, never letter content or passwords."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        # Throttling counts recent failures per account and per address.
        Index("ix_audit_action_user_at", "action", "username", "at"),
        Index("ix_audit_action_address_at", "action", "address", "at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    username: str = Field(max_length=64)
    address: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=32)
    organisation_cvr: str | None = Field(default=None, max_length=8)
    message_id: str | None = Field(default=None, max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
