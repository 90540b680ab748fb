"""The two unencrypted e-mails a recipient may choose: a notice that a letter waits (no content), and a
forward to a system inbox an administrator marked TLS-only."""

from __future__ import annotations

import datetime as dt
import quopri
from email.utils import format_datetime

from core.domain import NormalizedMessage
from core.logs import mask_cpr
from core.untrusted import one_line
from delivery.compose import cover_for
from delivery.envelope import address, build_inner, header_text

NOTICE_SUBJECT = "A letter is waiting for you"


def settings_footer(link: str) -> str:
    """The lines under every notice and digest: where to switch them off or send them elsewhere."""
    return ("Slå beskederne fra eller send dem til en anden adresse / switch these notices off or send "
            f"them to another address:\n{link}\n")


def waiting_notice(message: NormalizedMessage, *, organisation: str, from_addr: str, to_addr: str,
                   message_id: str, trace_id: str, console_url: str, settings_link: str = "") -> bytes:
    """'A letter from X is waiting': the sender's name and a reference, nothing of the letter itself;
    and the link where the recipient switches these notices off or sends them elsewhere."""
    sender = mask_cpr(one_line(message.sender.name or message.sender.id or "an unknown sender", limit=120))
    body = (f"A letter from {sender} to {organisation} is waiting for you in postbud.\n\n"
            f"It is not attached to this notice. Open it in the console: {console_url}/console/\n"
            f"Reference: {trace_id}\n")
    if settings_link:
        body += f"\n{settings_footer(settings_link)}"
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
