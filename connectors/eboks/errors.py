"""The one place e-Boks failures (httpx, ssl, XML, HTTP statuses) become `connectors.base` errors."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import httpx

from connectors.base import AuthError, ConnectorError, PermanentError, TransientError
from connectors.eboks.xmlparse import XmlError, XmlProblem, parse_error
from connectors.transport import certificate_failure, retry_after

#: e-Boks' "invalid login credentials" (Postboks APIClient.m).
BAD_CREDENTIALS = "10130"



@contextlib.contextmanager
def translated(what: str, *, raw: bytes | None = None) -> Iterator[None]:
    """Run one exchange with the provider; whatever escapes is a `ConnectorError` naming `what`.

    With `raw` (the body of one message's own document) bad XML is that message's fault and
    permanent; without it (listings, logon) nothing can be quarantined, so it is retried.
    """
    try:
        yield
    except ConnectorError:
        raise
    except XmlError as exc:
        if raw is not None and exc.kind is not XmlProblem.NOT_XML:
            raise PermanentError(f"e-Boks {what}: {exc}", raw=raw) from exc
        # A maintenance page where XML was due, or a listing that did not parse: retry later.
        raise TransientError(f"e-Boks {what}: unreadable answer ({exc})") from exc
    except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
        cert = certificate_failure(exc)
        if cert is not None:
            raise AuthError(
                f"e-Boks {what}: the server certificate did not verify ({cert.verify_message}); "
                "check ca_file and base_url"
            ) from exc
        if isinstance(exc, httpx.TimeoutException):
            raise TransientError(f"e-Boks {what}: timed out ({type(exc).__name__})") from exc
        raise TransientError(f"e-Boks {what}: {type(exc).__name__}: {exc}") from exc



def status_error(response: httpx.Response, what: str) -> ConnectorError:
    """The error for a non-2xx answer, typed by what the caller must do."""
    status = response.status_code
    if status == 429 or status == 408 or status >= 500:
        return TransientError(f"e-Boks {what}: HTTP {status}", retry_after=retry_after(response))
    info = parse_error(response.content, response.headers.get("content-type"))
    detail = f"HTTP {status}" + (f", ErrorCode {info.code}" if info.code else "")
    if info.text:
        detail += f": {info.text}"
    if status in (401, 403):
        if info.code == BAD_CREDENTIALS:
            return AuthError(f"e-Boks {what}: invalid login credentials ({detail}); "
                             "check cpr, password, device id and activation code or device key")
        return AuthError(f"e-Boks {what}: refused ({detail})")
    return PermanentError(f"e-Boks {what}: {detail}", raw=response.content or None)
