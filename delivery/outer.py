"""The unencrypted outer headers of an encrypted message: only what transport needs, a generic subject."""

from __future__ import annotations

import re
from collections.abc import Mapping

GENERIC_SUBJECT = "Encrypted message"


class WireMessage(bytes):
    """An outer message known to be canonical CRLF with no line starting with ".".

    Only smime.py and pgp.py make these (fixed headers over base64 or ASCII armor), so the SMTP
    sender can hand them to DATA without re-checking line ends or dot-stuffing: on a 370 KB
    message that check costs a quarter of the per-message budget.
    """

    __slots__ = ()


class InnerMessage(bytes):
    """An inner message that carries the fields the outer one copies, as its builder wrote them (one
    line each), so encrypting it need not read its header back (envelope.build_inner makes these)."""

    fields: Mapping[str, str]

    @classmethod
    def of(cls, data: bytes, fields: Mapping[str, str]) -> InnerMessage:
        message = cls(data)
        message.fields = fields
        return message


# Copied from the inner message so the envelope matches it; Subject is never copied (it would leak).
_COPIED = ("From", "To", "Date", "Message-ID")


def outer_headers(inner: bytes, *, subject: str = GENERIC_SUBJECT) -> list[str]:
    """Header lines for the outer message, taken from the inner message's own headers.

    An InnerMessage brings its fields along. Other bytes are read by hand, as the email package's
    parser reads them (a line that starts with a space or tab continues the one before; the first
    field of a name counts; the header ends at the first empty line or a line that is no field), at
    a tenth of its cost.
    """
    found = {name.lower(): value for name, value in inner.fields.items()} if isinstance(inner, InnerMessage) \
        else _header_fields(inner)
    lines = []
    for name in _COPIED:
        if (field := found.get(name.lower())) is not None:
            # unfolded: a folded value would carry the inner message's line breaks into ours
            lines.append(f"{name}: {' '.join(field.split())}")
        if name == "To":
            lines.append(f"Subject: {' '.join(subject.split())}")
    lines.append("MIME-Version: 1.0")
    return lines


def _header_fields(inner: bytes) -> dict[str, str]:
    """The copied fields' values (lower-case names), from the first field of each name."""
    end = inner.find(b"\r\n\r\n")
    head = inner if end < 0 else inner[:end]
    found: dict[str, str] = {}
    current: str | None = None
    for line in head.decode("ascii", "surrogateescape").splitlines():
        if line[:1] in (" ", "\t"):
            if current is not None:
                found[current] += " " + line
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD_NAME.match(name):
            break
        key = name.lower()
        current = key if key in _WANTED and key not in found else None
        if current is not None:
            found[current] = value
    return found


_WANTED = {name.lower() for name in _COPIED}
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")  # printable ASCII but ":" (RFC 5322 field-name)
