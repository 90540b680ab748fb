"""Settings of one e-Boks mailbox: the delegate's credentials, which share (company) it reads, and limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import Field, field_validator, model_validator

from connectors.base import ConnectorSettings
from core.settings import Cvr, is_cvr
from connectors.eboks.auth import AuthMode, Credentials, ResponseStyle

DEFAULT_BASE_URL = "https://rest.e-boks.dk/mobile/1/xml.svc/en-gb"
_CPR = re.compile(r"^\d{10}$")

Secret = Annotated[str, Field(repr=False, min_length=1)]
OptionalSecret = Annotated[str | None, Field(repr=False)]


class EboksSettings(ConnectorSettings):
    """One company mailbox reached through a delegate's personal e-Boks access (PROTOCOLS.md §1.7).

    `shares` maps each share the delegate sees (its `userId`, or its name as e-Boks shows it; "0" is
    the delegate's own mailbox) to the CVR it belongs to; `cvr` picks this instance's mailbox from it,
    so one delegate block can be reused for every company it reaches.
    """

    base_url: str = DEFAULT_BASE_URL
    ca_file: Path | None = None
    auth_mode: AuthMode
    cpr: Secret
    password: Secret
    device_id: str = Field(min_length=1)
    activation_code: OptionalSecret = None
    private_key: OptionalSecret = None
    private_key_file: Path | None = None
    rsa_hash: str = Field(default="sha256", pattern="^(sha256|sha1)$")
    response_style: ResponseStyle = ResponseStyle.HA_EBOKS
    cvr: Cvr
    shares: dict[str, str] = Field(min_length=1)
    folders: tuple[str, ...] = ("Inbox",)
    page_size: int = Field(default=100, ge=1, le=1000)
    include_read: bool = False
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    @field_validator("cpr")
    @classmethod
    def _cpr(cls, value: str) -> str:
        value = value.replace("-", "")
        if not _CPR.match(value):
            raise ValueError("cpr must be the delegate's CPR number: 10 digits, with or without a dash")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EboksSettings:
        if self.auth_mode is AuthMode.ACTIVATION and not self.activation_code:
            raise ValueError('auth_mode = "activation" needs activation_code (e-Boks: Menu → Mobiladgang)')
        if self.auth_mode is AuthMode.RSA:
            if not self.private_key and not self.private_key_file:
                raise ValueError('auth_mode = "rsa" needs private_key (or private_key_file): the PEM of '
                                 "the MitID-registered device key")
            try:
                # parsed, not checked for consistency: see auth._load_key
                key = serialization.load_pem_private_key(self.key_pem().encode("ascii"), password=None,
                                                         unsafe_skip_rsa_key_validation=True)
            except (ValueError, TypeError, UnicodeEncodeError) as exc:
                raise ValueError("private_key is not an unencrypted PEM private key") from exc
            except OSError as exc:
                raise ValueError(f"private_key_file cannot be read: {exc.strerror}") from exc
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("private_key must be an RSA key")
        bad = sorted(cvr for cvr in self.shares.values() if not is_cvr(cvr))
        if bad:
            raise ValueError(f"shares must map to 8-digit CVR numbers, got {bad}")
        if sum(1 for cvr in self.shares.values() if cvr == self.cvr) != 1:
            raise ValueError(f"exactly one entry in shares must map to cvr {self.cvr}")
        return self

    @property
    def share(self) -> str:
        """The share key (userId or name) of this instance's company."""
        return next(key for key, cvr in self.shares.items() if cvr == self.cvr)

    def key_pem(self) -> str:
        """The device key's PEM text, given inline or read from `private_key_file`."""
        if self.private_key:
            return self.private_key
        return self.private_key_file.read_text("ascii") if self.private_key_file else ""

    def credentials(self) -> Credentials:
        return Credentials(
            mode=self.auth_mode, cpr=self.cpr, password=self.password, device_id=self.device_id,
            activation_code=self.activation_code,
            private_key_pem=self.key_pem() if self.auth_mode is AuthMode.RSA else None,
            rsa_hash=self.rsa_hash,
        )


Settings = EboksSettings  # the name the connector contract gives a connector's settings model
