"""The one place mit.dk failures (httpx, ssl, JSON, HTTP statuses) become `connectors.base` errors."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx

from connectors.base import AuthError, ConnectorError, PermanentError, TransientError
from connectors.transport import certificate_failure, retry_after


class ShapeError(ValueError):
    """A JSON answer without what mit.dk always sends."""



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
        cert = certificate_failure(exc)
        if cert is not None:
            raise AuthError(f"mit.dk {what}: the server certificate did not verify "
                            f"({cert.verify_message}); check ca_file and base_url") from exc
        if isinstance(exc, httpx.TimeoutException):
            raise TransientError(f"mit.dk {what}: timed out ({type(exc).__name__})") from exc
        raise TransientError(f"mit.dk {what}: {type(exc).__name__}: {exc}") from exc



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
