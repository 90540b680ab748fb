"""`[console.oidc]`: signing in to the console through a company's OpenID Connect identity provider."""

from __future__ import annotations

import urllib.parse

from pydantic import Field, field_validator

from core.settings import Frozen, RelPath, SecretRef

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def https_or_loopback(name: str, value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        if parts.query or parts.fragment:
            raise ValueError(f"{name} has no query or fragment: {value!r}")
        return value.rstrip("/")
    raise ValueError(f"{name} must start with https:// (http:// only on 127.0.0.1 or localhost), not {value!r}")


class OidcSettings(Frozen):
    """The identity provider (found from `issuer` + /.well-known/openid-configuration) and this client.

    A person signs in only to an existing, enabled console account linked to the value of `claim` in
    the ID token (`postbud users add … --oidc VALUE` or `postbud users link NAME VALUE`)."""

    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: SecretRef
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    # The ID token claim whose value names the account: "email" (verified, when the provider says)
    # or "sub" (the provider's stable subject id), or another claim the provider puts in the ID token.
    claim: str = Field(default="email", min_length=1)
    display_name: str = Field(default="single sign-on", min_length=1, max_length=60)
    # Where the provider sends the browser back; default: this listener's /console/signin/oidc/callback
    # as the request reached it (set it behind a proxy, and register it at the provider).
    redirect_uri: str | None = None
    ca_file: RelPath | None = None  # default: the system trust store verifies the provider
    timeout_seconds: float = Field(default=10.0, gt=0)
    clock_skew_seconds: int = Field(default=60, ge=0, le=600)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return https_or_loopback("issuer", value)

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        return None if value is None else https_or_loopback("redirect_uri", value)

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("scopes must include \"openid\"")
        return value
