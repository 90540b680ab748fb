"""The one translation of httpx/ssl failures and NgDP statuses into the connector error tree."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from connectors.base import AuthError, PermanentError, TransientError
from connectors.ngdp.errors import (
    retry_after,
    status_error,
    translated,
    transport_error,
)


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"code": "X", "message": "m", "fieldErrors": []})


@pytest.mark.parametrize(("status", "operation", "expected"), [
    (401, "fetch", AuthError), (403, "list", AuthError), (429, "list", TransientError),
    (500, "fetch", TransientError), (503, "delete", TransientError), (504, "list", TransientError),
    (400, "list", TransientError), (404, "fetch", PermanentError), (422, "delete", PermanentError),
    (400, "send", PermanentError),
])
def test_status_codes_map_by_what_the_caller_must_do(status: int, operation: str,
                                                     expected: type[Exception]) -> None:
    assert type(status_error(_response(status), operation)) is expected


def test_retry_after_in_seconds_and_as_http_date() -> None:
    assert retry_after(_response(429, **{"Retry-After": "12"})) == 12.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    seconds = retry_after(_response(503, **{"Retry-After": format_datetime(later, usegmt=True)}))
    assert seconds is not None and 25 <= seconds <= 31
    assert retry_after(_response(503, **{"Retry-After": "soon"})) is None
    assert retry_after(_response(503)) is None


def _wrapped(cause: BaseException) -> httpx.ConnectError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise httpx.ConnectError("boom") from inner
    except httpx.ConnectError as outer:
        return outer


def test_tls_alert_about_our_certificate_is_auth() -> None:
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    assert isinstance(transport_error(_wrapped(alert), "list"), AuthError)


def test_untrusted_server_certificate_is_auth() -> None:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    assert isinstance(transport_error(_wrapped(error), "list"), AuthError)


@pytest.mark.parametrize("exc", [
    httpx.ConnectTimeout("t"), httpx.ReadTimeout("t"), httpx.RemoteProtocolError("r"),
    _wrapped(ConnectionResetError(104, "reset")), ConnectionRefusedError(111, "refused"),
])
def test_network_failures_are_transient(exc: Exception) -> None:
    assert isinstance(transport_error(exc, "fetch"), TransientError)


def test_translated_lets_nothing_of_httpx_out() -> None:
    with pytest.raises(TransientError) as caught, translated("list"):
        raise httpx.ReadError("gone")
    assert isinstance(caught.value.__cause__, httpx.ReadError)
