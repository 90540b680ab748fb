"""The unencrypted outer headers of an encrypted message: only what transport needs, a generic subject."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

GENERIC_SUBJECT = "Encrypted message"


class WireMessage(bytes):
    """An outer message known to be canonical CRLF with no line starting with ".".

    Only smime.py and pgp.py make these (fixed headers over base64 or ASCII armor), so the SMTP
    sender can hand them to DATA without re-checking line ends or dot-stuffing: on a 370 KB
    message that check costs a quarter of the per-message budget.
    """

    __slots__ = ()
# Copied from the inner message so the envelope matches it; Subject is never copied (it would leak).
_COPIED = ("From", "To", "Date", "Message-ID")


def outer_headers(inner: bytes, *, subject: str = GENERIC_SUBJECT) -> list[str]:
    """Header lines for the outer message, taken from the inner message's own headers."""
    end = inner.find(b"\r\n\r\n")
    head = inner if end < 0 else inner[: end + 4]
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head)
    lines = []
    for name in _COPIED:
        value = parsed[name]
        if value is not None:
            # unfolded: a folded value would carry the inner message's line breaks into ours
            lines.append(f"{name}: {' '.join(str(value).split())}")
        if name == "To":
            lines.append(f"Subject: {' '.join(subject.split())}")
    lines.append("MIME-Version: 1.0")
    return lines
