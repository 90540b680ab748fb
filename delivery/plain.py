"""The two unencrypted e-mails a recipient may choose: a notice that a letter waits (no content), and a
forward to a system inbox an administrator marked TLS-only."""

from __future__ import annotations

import datetime as dt
import quopri
from email.utils import format_datetime

from core.domain import NormalizedMessage
from core.untrusted import one_line
from delivery.compose import cover_for
from delivery.envelope import address, build_inner, header_text

NOTICE_SUBJECT = "A letter is waiting for you"


def waiting_notice(message: NormalizedMessage, *, organisation: str, from_addr: str, to_addr: str,
                   message_id: str, trace_id: str, console_url: str) -> bytes:
    """'A letter from X is waiting': the sender's name and a reference, nothing of the letter itself."""
    sender = one_line(message.sender.name or message.sender.id or "an unknown sender", limit=120)
    body = (f"A letter from {sender} to {organisation} is waiting for you in postbud.\n\n"
            f"It is not attached to this notice. Open it in the console: {console_url}/console/\n"
            f"Reference: {trace_id}\n")
    head = [
        f"From: {address(from_addr)}",
        f"To: {address(to_addr)}",
        f"Subject: {header_text(NOTICE_SUBJECT)}",
        f"Date: {format_datetime(dt.datetime.now(dt.UTC))}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "",
    ]
    return "\r\n".join(head).encode("ascii") + quopri.encodestring(body.replace("\n", "\r\n").encode("utf-8"))


def tls_only_forward(message: NormalizedMessage, *, from_addr: str, to_addr: str, message_id: str,
                     trace_id: str, received_at: dt.datetime) -> bytes:
    """The letter as it would be inside the encryption (cover note and documents), sent as it is."""
    return build_inner(from_addr=from_addr, to_addrs=[to_addr], message_id=message_id,
                       date=dt.datetime.now(dt.UTC),
                       cover=cover_for(message, trace_id=trace_id, received_at=received_at),
                       files=message.files())
