"""Settings of one mit.dk mailbox: the onboarding's token pair, which mailbox and folders, and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from connectors.base import ConnectorSettings
from core.settings import Cvr

DEFAULT_BASE_URL = "https://gateway.mit.dk/view/client/"

Secret = Annotated[str, Field(repr=False, min_length=1)]


class MitdkSettings(ConnectorSettings):
    """A company mailbox on mit.dk, reached with the token pair of one MitID onboarding (§2.1, §2.4).

    The refresh tokens here seed the chain once; every refresh returns new ones, which the connector
    keeps in its (encrypted) state, so these become stale after the first use.
    """

    base_url: str = DEFAULT_BASE_URL
    ca_file: Path | None = None
    client_id: str = Field(min_length=1)
    dpp_refresh_token: Secret
    ngdp_refresh_token: Secret
    cvr: Cvr
    mailbox_id: str | None = None
    owner_name: str | None = None
    data_source: str = "DP_PUBLIC"
    folders: tuple[str, ...] = ("INBOX",)
    page_size: int = Field(default=100, ge=1, le=1000)
    include_read: bool = False
    refresh_margin: float = Field(default=120.0, ge=0)
    mark_read_attempts: int = Field(default=3, ge=1, le=5)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _folders(self) -> MitdkSettings:
        if not self.folders:
            raise ValueError('folders must name at least one folder type, e.g. ["INBOX"]')
        return self


Settings = MitdkSettings  # the name the connector contract gives a connector's settings model
