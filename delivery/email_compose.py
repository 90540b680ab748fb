"""What the e-mail channel sends for one outbox row, made ahead of its send: the encrypted letter, a
notice instead of it, or a TLS-only forward; in the daemon, in a compose worker (compose_pool.py)."""

from __future__ import annotations

from dataclasses import dataclass

from delivery.compose import encrypted_email, message_id_for
from delivery.errors import EncryptionError
from delivery.notifying import notification_for
from delivery.outbound import Composed, Outbound
from delivery.plain import tls_only_forward


@dataclass(frozen=True)
class EmailIdentity:
    """The e-mail channel's settings that shape what it sends (From, Message-ID domain, console link)."""

    from_address: str
    message_id_domain: str
    console_url: str


def compose_email(item: Outbound, identity: EmailIdentity) -> Composed:
    """The message for `item` as the e-mail channel sends it (raises EncryptionError when it cannot)."""
    recipient = item.recipient
    message = item.letter()
    message_id = message_id_for(item.token, domain=identity.message_id_domain)
    if recipient.notify != "letter":
        return notification_for(item, from_addr=identity.from_address, message_id=message_id,
                                console_url=identity.console_url)
    if recipient.email is None:
        raise EncryptionError(f"recipient {recipient.id} has no e-mail address")
    if recipient.tls_only:
        # the administrator marked this forward target TLS-only: the trace records it per letter
        plain = tls_only_forward(message, from_addr=identity.from_address, to_addr=recipient.email,
                                 message_id=message_id, trace_id=item.trace_id, received_at=item.received_at)
        return Composed(plain, recipient.email, message_id, {"encrypted": False, "tls_only": True})
    wire = encrypted_email(message, recipient, key=item.key, from_addr=identity.from_address,
                           message_id=message_id, trace_id=item.trace_id, received_at=item.received_at)
    return Composed(wire, recipient.email, message_id)
