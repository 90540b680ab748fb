"""Reads an RFC 5322 e-mail (.eml) into a `NormalizedMessage`, with the stdlib `email` package."""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError, MessageError
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from connectors.errors import PermanentError
from connectors.text import extract_text
from core.domain import Document, DocumentKind, File, MessageType, NormalizedMessage, Party

MAX_BYTES = 50 * 1024 * 1024
_KNOWN_HEADERS = ("from", "to", "subject", "date", "message-id", "sender", "received", "mime-version")
# What the header parser can raise on hostile input (it is lenient, but not everywhere).
_HEADER_ERRORS = (HeaderParseError, MessageError, ValueError, IndexError, LookupError, TypeError, AttributeError)


class EmailError(PermanentError):
    """The bytes are not a usable e-mail; `str(error)` says why."""


def parse_eml(raw: bytes, *, max_bytes: int = MAX_BYTES) -> NormalizedMessage:
    """Parse one e-mail; raise `EmailError` (carrying `raw`) when it is not one.

    `message_id` is the Message-ID without angle brackets, or ``sha256:<hex of raw>`` when absent.
    The first PDF attachment is the MAIN document (a forwarded or scanned letter is the content);
    without one, the text body (plain preferred over HTML) is. Every other part is ADDITIONAL.
    `content_data` holds ``to``, ``cc`` (all addresses, comma-separated) and ``in_reply_to``.
    """
    try:
        return _parse(raw, max_bytes)
    except EmailError as error:
        error.raw = raw
        raise
    except RecursionError:
        # `From: ((((…` or MIME parts nested hundreds deep: the stdlib parser recurses per level.
        raise EmailError("e-mail nested too deeply to parse (headers or MIME parts)", raw=raw) from None
    except Exception as error:  # noqa: BLE001 - whatever the stdlib parser raises, this letter is unusable
        raise EmailError(f"undecodable e-mail: {type(error).__name__}: {error}"[:300], raw=raw) from None


def _parse(raw: bytes, max_bytes: int) -> NormalizedMessage:
    if len(raw) > max_bytes:
        raise EmailError(f"e-mail is {len(raw)} bytes, over the limit of {max_bytes}")
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    if b"\x00" in head:
        raise EmailError("binary data where e-mail headers should be")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage objects
    if not any(name.lower() in _KNOWN_HEADERS for name in message.keys()):
        raise EmailError("no e-mail headers found (From, To, Subject, Date or Message-ID)")
    try:
        documents = _documents(message)
        main = next((d for d in documents if d.kind is DocumentKind.MAIN), None)
        return NormalizedMessage(
            message_id=_message_id(message, raw),
            message_type=MessageType.EMAIL,
            title=_clean(str(message.get("Subject", ""))).strip(),
            sender=_party(message, "From") if message.get("From") else _party(message, "Sender"),
            recipient=_party(message, "To"),
            format="eml",
            documents=documents,
            sent_at=_date(message),
            content_data=_content_data(message),
            text=extract_text(main.files[0]) if main else "",
        )
    except _HEADER_ERRORS as error:
        raise EmailError(f"undecodable e-mail: {type(error).__name__}: {error}") from None


def _clean(text: str) -> str:
    # Undecodable header bytes arrive as lone surrogates, which nothing downstream can store.
    return text.encode("utf-8", "replace").decode("utf-8")


def _message_id(message: EmailMessage, raw: bytes) -> str:
    value = _clean(str(message.get("Message-ID", ""))).strip().strip("<>").strip()
    return value or "sha256:" + hashlib.sha256(raw).hexdigest()


def _addresses(message: EmailMessage, name: str) -> list[tuple[str, str]]:
    header: Any = message.get(name)
    if header is None:
        return []
    return [(_clean(a.addr_spec), _clean(a.display_name)) for a in getattr(header, "addresses", ())]


def _party(message: EmailMessage, name: str) -> Party:
    addresses = _addresses(message, name)
    if not addresses:
        return Party()
    address, display_name = addresses[0]
    return Party(id=address or None, id_type="EMAIL", name=display_name or None)


def _date(message: EmailMessage) -> datetime | None:
    header: Any = message.get("Date")
    value = getattr(header, "datetime", None) if header is not None else None
    if not isinstance(value, datetime):
        return None
    # RFC 5322 "-0000" means "UTC, local zone unknown"; the parser returns that as naive.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _content_data(message: EmailMessage) -> dict[str, str]:
    items: dict[str, str] = {}
    for key, name in (("to", "To"), ("cc", "Cc")):
        addresses = [address for address, _ in _addresses(message, name) if address]
        if addresses:
            items[key] = ", ".join(addresses)
    in_reply_to = _clean(str(message.get("In-Reply-To", ""))).strip().strip("<>").strip()
    if in_reply_to:
        items["in_reply_to"] = in_reply_to
    return items


def _documents(message: EmailMessage) -> tuple[Document, ...]:
    body = _body_file(message)
    attachments = [_attachment_file(part, n) for n, part in enumerate(_attachments(message), start=1)]
    pdf = next((f for f in attachments if f.media_type == "application/pdf"), None)
    main = pdf or body
    others = [f for f in ([body] if body is not None else []) + attachments if f is not main]
    documents = [Document(kind=DocumentKind.MAIN, files=(main,))] if main is not None else []
    documents += [Document(kind=DocumentKind.ADDITIONAL, files=(f,), label=f.name) for f in others]
    return tuple(documents)


def _attachments(message: EmailMessage) -> list[EmailMessage]:
    if not message.is_multipart():
        # A single-part mail that is not a text body (a bare PDF, say) is its own attachment.
        is_body = message.get_content_maintype() == "text" and message.get_content_disposition() != "attachment"
        return [] if is_body or not message.get_payload() else [message]
    return [part for part in message.iter_attachments() if isinstance(part, EmailMessage)]


def _body_file(message: EmailMessage) -> File | None:
    part = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(part, EmailMessage) or part.get_content_disposition() == "attachment":
        return None
    try:
        text = part.get_content()
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(text, str) or not text.strip():
        return None
    subtype = part.get_content_subtype()
    return File(name=f"body.{'html' if subtype == 'html' else 'txt'}", media_type=f"text/{subtype}",
                content=_clean(text).encode("utf-8"))


def _attachment_file(part: EmailMessage, n: int) -> File:
    media_type = part.get_content_type()
    payload = part.get_payload(decode=True)
    # message/rfc822 and multipart attachments have no decoded payload: keep the part's own bytes.
    content = payload if isinstance(payload, bytes) else part.as_bytes()
    name = _clean(part.get_filename() or "").strip()
    if not name:
        name = f"attachment-{n}{mimetypes.guess_extension(media_type) or '.bin'}"
    return File(name=name, media_type=media_type, content=content)
