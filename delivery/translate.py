"""The one place where SMTP wire, ssl and httpx exceptions (and remote replies) become delivery errors."""

from __future__ import annotations

import ssl

import httpx

from delivery.errors import (
    DeliveryError,
    PostAuthFailed,
    PostPermanent,
    PostTransient,
    RelayUnreachable,
    SmtpAuthFailed,
    SmtpPermanent,
    SmtpTransient,
    TlsRequired,
    WebhookPermanent,
    WebhookRefused,
    WebhookTransient,
)
from delivery.smtp_wire import AuthRefused, ReplyError

# what smtp.py and webhook.py catch and hand to the functions below
SMTP_FAULTS = (ReplyError, OSError)  # ssl.SSLError, ConnectionError and TimeoutError are OSErrors
HTTP_FAULTS = (httpx.TransportError,)

_WEBHOOK_TRANSIENT_STATUS = {408, 425, 429}
# The receiver refuses us rather than the envelope: a secret rotated on one side only (401/403), a
# route missing while it deploys (404/410). Dead-lettering at once would lose the letter.
_WEBHOOK_REFUSED_STATUS = {401, 403, 404, 410}


def smtp_reply_error(code: int, text: str) -> SmtpTransient | SmtpPermanent:
    """A refusal in the transaction: 4xx retry later, anything else dead-letters the letter."""
    if 400 <= code < 500:
        return SmtpTransient(text, code=code)
    return SmtpPermanent(text, code=code)


def smtp_connect_error(exc: BaseException, *, host: str, port: int) -> DeliveryError:
    """A failure while connecting, saying hello, starting TLS or logging in: nothing was sent."""
    if isinstance(exc, AuthRefused):
        return SmtpAuthFailed(exc.text, code=exc.code)
    if isinstance(exc, ssl.SSLError) or _ssl_cause(exc):
        return TlsRequired(f"TLS with {host}:{port} failed: {exc}; nothing sent")
    if isinstance(exc, ReplyError):
        # a refused greeting/EHLO is the server's state, not this message's fault: pause the channel
        return RelayUnreachable(exc.text, code=exc.code)
    return RelayUnreachable(f"cannot connect to {host}:{port}: {exc}")


def smtp_transaction_error(exc: BaseException) -> SmtpTransient | SmtpPermanent:
    """A failure during MAIL/RCPT/DATA. A reply error carries the server's code (the connection is
    still usable); anything else lost the connection (code None)."""
    if isinstance(exc, ReplyError):
        return smtp_reply_error(exc.code, exc.text)
    return SmtpTransient(f"connection lost during the transaction: {type(exc).__name__}")


def webhook_transport_error(exc: httpx.TransportError) -> DeliveryError:
    """A request that got no HTTP status back."""
    if isinstance(exc, httpx.ConnectError):
        if _ssl_cause(exc):
            return TlsRequired(f"TLS with the webhook endpoint failed: {exc}; nothing sent")
        return WebhookTransient(f"cannot connect to the webhook endpoint: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return WebhookTransient(f"webhook endpoint did not answer in time ({type(exc).__name__})")
    return WebhookTransient(f"webhook transport error: {type(exc).__name__}")


def webhook_status_error(status: int, text: str) -> WebhookTransient | WebhookRefused | WebhookPermanent:
    """A non-2xx status: the endpoint's trouble (retry), its refusal of us (retry and alert), or its
    refusal of this envelope (dead-letter)."""
    if status >= 500 or status in _WEBHOOK_TRANSIENT_STATUS:
        return WebhookTransient(text, code=status)
    if status in _WEBHOOK_REFUSED_STATUS:
        return WebhookRefused(text, code=status)
    return WebhookPermanent(text, code=status)


def post_transport_error(exc: httpx.TransportError) -> DeliveryError:
    """A request to the print provider that got no HTTP status back."""
    if isinstance(exc, httpx.ConnectError) and _ssl_cause(exc):
        return TlsRequired(f"TLS with the print provider failed: {exc}; nothing sent")
    return PostTransient(f"print provider unreachable or slow: {type(exc).__name__}")


def post_status_error(status: int, text: str) -> DeliveryError:
    """A non-2xx status from the print provider."""
    if status in (401, 403):
        return PostAuthFailed(text, code=status)
    if status >= 500 or status in _WEBHOOK_TRANSIENT_STATUS:
        return PostTransient(text, code=status)
    return PostPermanent(text, code=status)


def _ssl_cause(exc: BaseException) -> bool:
    # libraries wrap the ssl error (httpx in ConnectError)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
