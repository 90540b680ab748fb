"""Translation of one fetched e-Boks message (detail + body + attachments) into a `NormalizedMessage`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.domain import Document, DocumentKind, File, MessageType, NormalizedMessage, Party

from connectors.eboks.xmlparse import MessageInfo, utc

FORMAT = "eboks"
_MEDIA_TYPES = {
    "pdf": "application/pdf",
    "html": "text/html",
    "htm": "text/html",
    "plain": "text/plain",
    "txt": "text/plain",
    "text": "text/plain",
    "xml": "application/xml",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "tiff": "image/tiff",
}
_EXTENSIONS = {"plain": "txt", "text": "txt", "htm": "html"}
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


@dataclass(frozen=True)
class Part:
    """One downloaded file: its e-Boks name and format, the bytes, and the HTTP content type."""

    name: str
    format: str
    content: bytes
    content_type: str | None


def media_type(fmt: str, content: bytes, content_type: str | None) -> str:
    """The media type from the e-Boks `format`; text types name their charset, since bodies may be Latin-1."""
    base = _MEDIA_TYPES.get(fmt.lower())
    if base is None:
        declared = (content_type or "").split(";")[0].strip().lower()
        base = declared if declared and declared != "application/octet-stream" else "application/octet-stream"
    if base.startswith("text/"):
        try:
            content.decode("utf-8")
            charset = "utf-8"
        except UnicodeDecodeError:
            charset = "iso-8859-1"
        return f"{base}; charset={charset}"
    return base


def file_name(name: str, fmt: str) -> str:
    """A file name with the format as its extension (clients use the lower-cased format, §1.4)."""
    stem = _UNSAFE.sub("_", name).strip(" .") or "document"
    ext = _EXTENSIONS.get(fmt.lower(), fmt.lower()) if fmt else ""
    if not ext or stem.lower().endswith(f".{ext}"):
        return stem
    return f"{stem}.{ext}"


def _file(part: Part) -> File:
    return File(name=file_name(part.name, part.format),
                media_type=media_type(part.format, part.content, part.content_type),
                content=part.content)


def extract(file: File) -> str:
    """The routing text of the main document; empty while `connectors.text` is not installed."""
    try:
        from connectors.text import extract_text
    except ImportError:
        return ""
    return str(extract_text(file))


def normalize(info: MessageInfo, body: Part, attachments: list[Part], *, cvr: str,
              share_name: str | None) -> NormalizedMessage:
    main = _file(body)
    documents = [Document(kind=DocumentKind.MAIN, files=(main,), document_id=info.message_id, label=info.subject)]
    documents += [
        Document(kind=DocumentKind.ADDITIONAL, files=(_file(part),), label=part.name) for part in attachments
    ]
    return NormalizedMessage(
        message_id=info.message_id,
        message_type=MessageType.DIGITALPOST,
        title=info.subject,
        sender=Party(id=info.sender_id or None, id_type="EBOKS" if info.sender_id else None,
                     name=info.sender or None),
        recipient=Party(id=cvr, id_type="CVR", name=share_name or None),
        format=FORMAT,
        documents=tuple(documents),
        sent_at=utc(info.received),
        text=extract(main),
    )
