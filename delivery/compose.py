"""One call from a normalized message and an approved recipient to the encrypted e-mail to send."""

from __future__ import annotations

import datetime as dt
import re

from delivery.envelope import Cover, build_inner
from delivery.errors import EncryptionError
from delivery.outer import WireMessage
from delivery.pgp import encrypt_pgp
from delivery.recipients import KeyKind, Recipient
from delivery.smime import encrypt_smime
from core.domain import NormalizedMessage

_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+$")


def message_id_for(outbox_id: int | str, *, domain: str) -> str:
    """The deterministic Message-ID of one outbox row: every resend of it carries the same id."""
    if not _DOMAIN.match(domain) or not re.match(r"^[A-Za-z0-9._-]+$", str(outbox_id)):
        raise ValueError("outbox id and domain must be plain tokens")
    return f"<postbud.{outbox_id}@{domain}>"


def cover_for(message: NormalizedMessage, *, trace_id: str, received_at: dt.datetime) -> Cover:
    """The cover note's facts about a message (sender's name or id, title, when it came in)."""
    sender = message.sender.name or message.sender.id or "unknown sender"
    return Cover(sender=sender, title=message.title, received_at=received_at, trace_id=trace_id,
                 notification=message.notification, text=message.text, has_files=bool(message.files()))


def encrypted_email(message: NormalizedMessage, recipient: Recipient, *, key: bytes,
                    from_addr: str, message_id: str, trace_id: str,
                    received_at: dt.datetime, date: dt.datetime | None = None) -> WireMessage:
    """The outer message for one recipient, encrypted with the key kind the recipient has.

    `key` is the content of the recipient's smime_cert or pgp_key file, read (and checked with
    keys.check_recipient_key) by the caller just before sending.
    """
    if recipient.email is None:
        raise EncryptionError(f"recipient {recipient.id} has no e-mail address")
    inner = build_inner(
        from_addr=from_addr, to_addrs=[recipient.email], message_id=message_id,
        date=date or dt.datetime.now(dt.UTC),
        cover=cover_for(message, trace_id=trace_id, received_at=received_at),
        files=message.files(),
    )
    if recipient.key_kind is KeyKind.SMIME:
        return encrypt_smime(inner, key)
    if recipient.key_kind is KeyKind.PGP:
        return encrypt_pgp(inner, key)
    raise EncryptionError(f"recipient {recipient.id} has no key material: nothing is sent in clear")
