"""What every HTTP connector reads the same way: Retry-After, and a failed server-certificate check."""

from __future__ import annotations

import ssl
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate-verification error behind `exc` (httpx wraps it), if that is what failed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
