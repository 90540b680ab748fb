"""The onboarding checklist's table: the key a recipient gave on the confirmation page, and the test
letter whose code proves they can read what is encrypted to it (migration 0007)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.storage.models import UtcDateTime, utcnow


def _ts() -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))


class RecipientOnboarding(SQLModel, table=True):
    """One recipient's self-service steps after confirming their address (RecipientApproval holds
    invited → confirmed → approved).

    `key_data` is the public key as given (PEM certificate or armored OpenPGP key; never a private
    key): the recipients file stays the source of truth for *who*, the database keeps the key they
    uploaded or were issued. `test_code_hash` is the SHA-256 of the code the encrypted test letter
    carries; the code itself exists only in that letter.
    """

    __tablename__ = "recipient_onboarding"
    __table_args__ = (UniqueConstraint("organisation_cvr", "recipient", name="uq_recipient_onboarding"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_cvr: str = Field(max_length=8)
    recipient: str = Field(max_length=64)
    key_kind: str | None = Field(default=None, max_length=8)  # "smime" | "pgp"
    key_source: str | None = Field(default=None, max_length=8)  # "upload" | "issued"
    key_data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    key_fingerprint: str | None = Field(default=None, max_length=64)
    key_expires_at: datetime | None = _ts()
    key_provided_at: datetime | None = _ts()
    test_code_hash: str | None = Field(default=None, max_length=64)
    test_sent_at: datetime | None = _ts()
    test_confirmed_at: datetime | None = _ts()
    reminded_at: datetime | None = _ts()
    reminders: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
