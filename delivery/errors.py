"""Delivery errors, typed by what the caller must do with the outbox row.

    DeliveryError                  base; carries the remote reply (code, text) when there is one
    ├── TransientDeliveryError     retry later with back-off: nothing was accepted by the remote side
    │   ├── SmtpTransient          connection error, timeout, 4xx reply
    │   │   └── SmtpAuthFailed     AUTH refused: pause the channel, ask for new credentials
    │   └── WebhookTransient       connection error, timeout, 408/429/5xx
    ├── PermanentDeliveryError     dead-letter this delivery, keep the reply in the trace
    │   ├── SmtpPermanent          5xx reply, refused recipient
    │   └── WebhookPermanent       any other non-2xx status
    ├── TlsRequired                server offers no TLS or its certificate is invalid: NOTHING was sent
    ├── RecipientsFileError        the approved-recipients file is malformed (names file, key, line)
    └── EncryptionError            the recipient's key material cannot be used to encrypt

No aiosmtplib, httpx or ssl exception leaves `delivery/`: they are translated in smtp.py and
webhook.py, each in one place.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Base of every delivery error; `code`/`text` hold the remote side's reply when known."""

    def __init__(self, text: str, *, code: int | None = None) -> None:
        super().__init__(f"{code} {text}" if code is not None else text)
        self.code = code
        self.text = text


class TransientDeliveryError(DeliveryError):
    """Retry later: the remote side did not accept the message."""


class PermanentDeliveryError(DeliveryError):
    """Do not retry: dead-letter the delivery with the reply in the trace."""


class SmtpTransient(TransientDeliveryError):
    """Connection error, timeout or 4xx reply from the SMTP server."""


class SmtpAuthFailed(SmtpTransient):
    """The server refused our credentials; the message is fine, the channel needs attention."""


class SmtpPermanent(PermanentDeliveryError):
    """5xx reply or refused recipient."""


class WebhookTransient(TransientDeliveryError):
    """Connection error, timeout, 408, 429 or 5xx from the webhook endpoint."""


class WebhookPermanent(PermanentDeliveryError):
    """Any other non-2xx status from the webhook endpoint."""


class TlsRequired(DeliveryError):
    """No TLS (not offered, or the certificate failed verification): nothing was sent."""


class RecipientsFileError(DeliveryError):
    """The approved-recipients file cannot be used as written."""


class EncryptionError(DeliveryError):
    """The recipient's certificate or OpenPGP key cannot be used to encrypt."""
