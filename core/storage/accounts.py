"""The console's tables: local accounts, server-side sessions and the audit trail (migration 0006), the
trusted locations: networks authorised at run time and the one-time links that authorise them (0009), and
accounts' OpenID Connect identities and sign-ins under way at the identity provider (0010)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.storage.models import UtcDateTime, new_id, utcnow


class ConsoleUser(SQLModel, table=True):
    """A person who signs in to the console: one access profile, for every organisation granted.

    `password_hash` is an argon2 hash; `recipient` ties a delivery-profile account to the recipient id
    whose letters it may read. A disabled account cannot sign in and its sessions are ended.
    `oidc_identity` is the value of `[console.oidc] claim` (an e-mail address, a subject id) that signs
    in to this account through the identity provider; None: password only. An account made for the
    identity provider alone has an unusable `password_hash` ("!").
    """

    __tablename__ = "console_user"
    __table_args__ = (Index("ix_console_user_oidc_identity", "oidc_identity", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str
    profile: str = Field(max_length=32)
    organisations: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    recipient: str | None = Field(default=None, max_length=64)
    # Where a link authorising a new network is mailed (trusted locations); None: the user name when it
    # is an address, else nowhere (an administrator authorises the network).
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="da", max_length=8)
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    oidc_identity: str | None = Field(default=None, max_length=255)


class OidcPending(SQLModel, table=True):
    """A browser sent to the identity provider and not back yet: what its return must match.

    `id` is the SHA-256 of the random token in that browser's `postbud_oidc` cookie, so only the browser
    that left can come back; `state` must come back beside the code, `nonce` inside the ID token;
    `verifier` is the PKCE code verifier. Used once, then deleted."""

    __tablename__ = "console_oidc_pending"

    id: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=128)
    nonce: str = Field(max_length=128)
    verifier: str = Field(max_length=128)
    language: str = Field(default="da", max_length=8)
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


class TrustedNetwork(SQLModel, table=True):
    """A network an organisation authorised at run time, by a user's mailed link or by an administrator
    (the configured ones are in the config file). `network` is normalised CIDR."""

    __tablename__ = "trusted_network"
    __table_args__ = (UniqueConstraint("organisation_cvr", "network", name="uq_trusted_network"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_cvr: str = Field(max_length=8, index=True)
    network: str = Field(max_length=64)
    via: str = Field(max_length=16)  # link, console or cli
    added_by: str = Field(max_length=64)
    added_from: str | None = Field(default=None, max_length=64)
    added_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class LocationLink(SQLModel, table=True):
    """A one-time link mailed after a correct password from a network not authorised yet: it works once,
    until `expires_at`, opened from `network`. `id` is the SHA-256 of the link's token (the token is only
    in the mail)."""

    __tablename__ = "location_link"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="console_user.id", index=True)
    network: str = Field(max_length=64)
    organisations: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    requested_from: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
