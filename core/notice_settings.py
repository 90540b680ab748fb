"""The [notices] section: notices to people and recipients' notices and digests, by e-mail through the
delivery relay (TLS always)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from core.settings import Frozen


class NoticeSettings(Frozen):
    """Notices to people (administrators, processors) by e-mail through the delivery relay (TLS always)."""

    enabled: bool = True
    console_url: str | None = None  # None: [delivery] approval_base_url, the daemon's listener
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Recipients with notify = "digest" get one mail a day at this local time (delivery/digest.py).
    digest_time: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "Europe/Copenhagen"
    # How long the signed link to a recipient's notification settings in every notice works.
    preferences_link_days: float = Field(default=30.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {value!r} is not a known IANA zone (e.g. Europe/Copenhagen)") from None
        return value

    @field_validator("console_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("console_url must start with https:// (or http:// on localhost)")
        return value.rstrip("/") if value is not None else None
