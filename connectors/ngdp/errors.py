"""The one place where httpx and ssl failures, and NgDP status codes, become `connectors.base` errors."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Iterator

import httpx

from connectors.base import AuthError, ConnectorError, PermanentError, TransientError
from connectors.transport import cause_of, retry_after

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})



def _reason(response: httpx.Response) -> str:
    """The `ErrorMessage.code` when the body has one (never the whole body: it may echo content)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return f" ({body['code'][:60]})"
    return ""


def status_error(response: httpx.Response, operation: str, *,
                 raw: bytes | None = None) -> ConnectorError:
    """The error for a non-success status of `operation` (list, fetch, receipt, delete, send)."""
    status = response.status_code
    what = f"NgDP {operation}: HTTP {status}{_reason(response)}"
    if status in (401, 403):
        return AuthError(f"{what}: system certificate or API token rejected")
    if status in _TRANSIENT_STATUS or status >= 500:
        return TransientError(what, retry_after=retry_after(response))
    if operation == "list":
        # A refused listing is not about one message; backing off lets a person see it in the trace.
        return TransientError(what)
    return PermanentError(what, raw=raw)




def _refuses_our_certificate(error: ssl.SSLError) -> bool:
    """A TLS alert from the server about our certificate (bad, unknown CA, required, denied).

    Under TLS 1.3 a server that rejects the certificate may only reset the connection, which is
    indistinguishable from a network failure and stays transient.
    """
    reason = str(getattr(error, "reason", None) or error).upper()
    return "ALERT" in reason and any(
        word in reason for word in ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED", "DECRYPT_ERROR"))


def transport_error(exc: Exception, operation: str) -> ConnectorError:
    """Maps an httpx/ssl/OS error raised while talking to NgDP."""
    if isinstance(exc, ConnectorError):
        return exc
    cause = cause_of(exc, ssl.SSLError)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return AuthError(f"NgDP {operation}: server certificate not trusted ({cause.verify_message})")
    if cause is not None and _refuses_our_certificate(cause):
        reason = getattr(cause, "reason", None) or "alert"
        return AuthError(f"NgDP {operation}: TLS refused our system certificate ({reason})")
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"NgDP {operation}: timed out ({type(exc).__name__})")
    if isinstance(exc, (httpx.HTTPError, OSError, ssl.SSLError)):
        return TransientError(f"NgDP {operation}: {type(exc).__name__}")
    raise exc


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Every httpx/ssl/OS error inside the block leaves as a `ConnectorError`."""
    try:
        yield
    except ConnectorError:
        raise
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ssl.SSLError) as exc:
        raise transport_error(exc, operation) from exc
