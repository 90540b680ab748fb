"""Delivery errors, typed by what the caller must do with the outbox row.

    DeliveryError                    base; carries the remote reply (code, text) when there is one
    ├── TransientDeliveryError       RETRY: try this letter again later, with back-off
    │   ├── SmtpTransient            connection error, timeout, refused greeting, 4xx reply
    │   ├── WebhookTransient         connection error, timeout (read, write, pool), 408/425/429/5xx
    │   ├── WebhookRefused           401/403 (secret rotated) or 404/410 (receiver being deployed):
    │   │                            retried with back-off until max_attempts, and alerted
    │   └── PostTransient            print provider unreachable, slow, 429/5xx, or the letter still
    │                                in progress (looked at again later, found by its reference)
    ├── ChannelUnavailable           PAUSE_CHANNEL: the channel, not the letter, is at fault;
    │   │                            stop using the channel, the letter waits for it
    │   ├── TlsRequired              no TLS (not offered, not https, certificate invalid): NOTHING sent
    │   ├── SmtpAuthFailed           AUTH refused: the channel needs new credentials
    │   ├── RelayUnreachable         the relay cannot be reached or refuses to greet: NOTHING sent
    │   └── PostAuthFailed           the print provider refuses our client credentials
    ├── RecipientUnusable            HOLD_RECIPIENT: nothing can go to this recipient as configured;
    │   │                            hold its rows, send its letters back for re-routing
    │   └── EncryptionError          the recipient's key material cannot be used to encrypt
    ├── PermanentDeliveryError       DEAD_LETTER: the remote side refused this letter for good;
    │   │                            fail the row, keep the reply in the trace
    │   ├── SmtpPermanent            5xx reply, refused recipient
    │   ├── WebhookPermanent         any other 4xx: the receiver refuses this envelope itself
    │   └── PostPermanent            the provider refused or failed the letter, or there is no PDF
    └── RecipientsFileError          not a send outcome: the approved-recipients file is malformed
                                     (names file, key, line); the operator fixes the file

Each class states its `action`; the worker acts on that, never on the class. No aiosmtplib, httpx
or ssl exception leaves `delivery/`: translate.py turns them into these, in one place.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Action(StrEnum):
    """What the outbox worker does with a row whose send raised."""

    RETRY = "retry"  # back off and try the letter again; the attempt counts
    PAUSE_CHANNEL = "pause_channel"  # stop using the channel; the letter is not to blame
    HOLD_RECIPIENT = "hold_recipient"  # hold the recipient's rows; its letters go back to held
    DEAD_LETTER = "dead_letter"  # fail the row for good, with the reply


class DeliveryError(Exception):
    """Base of every delivery error; `code`/`text` hold the remote side's reply when known.

    A bare DeliveryError (an unforeseen fault) is retried like a transient one.
    """

    action: ClassVar[Action] = Action.RETRY
    # Set when an operator must look although the letter is retried (postbud_delivery_refused_total).
    alert: ClassVar[str | None] = None

    def __init__(self, text: str, *, code: int | None = None) -> None:
        super().__init__(f"{code} {text}" if code is not None else text)
        self.code = code
        self.text = text


class TransientDeliveryError(DeliveryError):
    """Retry later: the remote side did not accept the message."""

    action = Action.RETRY


class ChannelUnavailable(DeliveryError):
    """The channel cannot be used now (its TLS, its credentials): pause it; the letter is not at fault."""

    action = Action.PAUSE_CHANNEL


class RecipientUnusable(DeliveryError):
    """Nothing can be sent to this recipient as configured: hold it until someone looks."""

    action = Action.HOLD_RECIPIENT


class PermanentDeliveryError(DeliveryError):
    """Do not retry: dead-letter the delivery with the reply in the trace."""

    action = Action.DEAD_LETTER


class SmtpTransient(TransientDeliveryError):
    """Connection error, timeout or 4xx reply from the SMTP server."""


class SmtpPermanent(PermanentDeliveryError):
    """5xx reply or refused recipient."""


class WebhookTransient(TransientDeliveryError):
    """Connection error, timeout, 408, 425, 429 or 5xx from the webhook endpoint."""


class WebhookRefused(TransientDeliveryError):
    """401/403/404/410: the receiver refused us (a rotated secret, a deploy in progress). Retried with
    back-off, since it usually heals, and alerted, since it may need a person."""

    alert = "webhook_refused"


class WebhookPermanent(PermanentDeliveryError):
    """Any other 4xx from the webhook endpoint: it refuses this envelope itself."""


class TlsRequired(ChannelUnavailable):
    """No TLS (not offered, or the certificate failed verification): nothing was sent."""


class SmtpAuthFailed(ChannelUnavailable):
    """The server refused our credentials; the message is fine, the channel needs attention."""


class RelayUnreachable(ChannelUnavailable):
    """Connecting to the relay failed, or it refused the greeting: it is down, not the letter."""


class EncryptionError(RecipientUnusable):
    """The recipient's certificate or OpenPGP key cannot be used to encrypt."""


class RecipientsFileError(DeliveryError):
    """The approved-recipients file cannot be used as written."""


class PostTransient(TransientDeliveryError):
    """The print provider is unreachable or slow, or the letter is not posted yet: look again later."""


class PostAuthFailed(ChannelUnavailable):
    """The print provider refuses our client credentials: the channel needs new ones."""


class PostPermanent(PermanentDeliveryError):
    """The provider refused or failed the letter (bad address, validation), or nothing is printable."""
