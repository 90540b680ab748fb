"""The one place mit.dk failures (httpx, ssl, JSON, HTTP statuses) become `connectors.base` errors."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.base import AuthError, ConnectorError, PermanentError, TransientError


class ShapeError(ValueError):
    """A JSON answer without what mit.dk always sends."""


def _cert_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def translated(what: str, *, raw: bytes | None = None) -> Iterator[None]:
    """Run one exchange with mit.dk; whatever escapes is a `ConnectorError` naming `what`.

    With `raw` (one message's own JSON) a shape error is that message's fault and permanent.
    """
    try:
        yield
    except ConnectorError:
        raise
    except ShapeError as exc:
        if raw is not None:
            raise PermanentError(f"mit.dk {what}: {exc}", raw=raw) from exc
        raise TransientError(f"mit.dk {what}: unexpected answer ({exc})") from exc
    except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
        cert = _cert_failure(exc)
        if cert is not None:
            raise AuthError(f"mit.dk {what}: the server certificate did not verify "
                            f"({cert.verify_message}); check ca_file and base_url") from exc
        if isinstance(exc, httpx.TimeoutException):
            raise TransientError(f"mit.dk {what}: timed out ({type(exc).__name__})") from exc
        raise TransientError(f"mit.dk {what}: {type(exc).__name__}: {exc}") from exc


def retry_after(response: httpx.Response) -> float | None:
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
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def json_body(response: httpx.Response, what: str) -> Any:
    """The JSON of a 2xx answer; mit.dk intermittently answers HTML, and sometimes errors inside a 200."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        # helmstedt retries these: the next attempt usually gets JSON (PROTOCOLS.md §2.5).
        raise TransientError(f"mit.dk {what}: the answer was not JSON "
                             f"({response.headers.get('content-type', 'no content type')})") from exc
    if isinstance(body, dict) and body.get("errorMessages"):
        codes = ", ".join(str(e.get("code")) for e in body["errorMessages"] if isinstance(e, dict))
        raise TransientError(f"mit.dk {what}: the answer carried errors ({codes})")
    return body


def _detail(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return response.text[:120].strip() if response.content else ""
    if isinstance(body, dict):
        return " ".join(str(body.get(k)) for k in ("code", "message") if body.get(k))
    return ""


def status_error(response: httpx.Response, what: str) -> ConnectorError:
    """The error for a non-2xx answer, typed by what the caller must do."""
    status = response.status_code
    detail = f"HTTP {status}" + (f": {d}" if (d := _detail(response)) else "")
    if status in (408, 429) or status >= 500:
        return TransientError(f"mit.dk {what}: {detail}", retry_after=retry_after(response))
    if status in (401, 403):
        return AuthError(f"mit.dk {what}: refused ({detail})")
    return PermanentError(f"mit.dk {what}: {detail}", raw=response.content or None)
