"""What every HTTP connector reads the same way: Retry-After, and a failed server-certificate check."""

from __future__ import annotations

import ssl
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

E = TypeVar("E", bound=BaseException)


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


def cause_of(exc: BaseException, kind: type[E]) -> E | None:
    """The first error of `kind` in `exc`'s chain (httpx wraps ssl errors), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate-verification error behind `exc`, if that is what failed."""
    return cause_of(exc, ssl.SSLCertVerificationError)
