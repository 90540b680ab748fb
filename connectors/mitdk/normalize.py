"""Translation of a mit.dk message (NgDP's resource model as JSON, PROTOCOLS.md §2.3) into a `NormalizedMessage`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from core.domain import (
    Attention,
    Document,
    DocumentKind,
    File,
    Flags,
    ForwardData,
    MessageType,
    NormalizedMessage,
    Party,
)

from connectors.mitdk.errors import ShapeError

FORMAT = "mitdk"
_KINDS = {"MAIN": DocumentKind.MAIN, "ADDITIONAL": DocumentKind.ADDITIONAL, "TECHNICAL": DocumentKind.TECHNICAL}


@dataclass(frozen=True)
class FileRef:
    """One file to download: where it sits and what mit.dk says it is."""

    document_index: int
    document_id: str
    file_id: str
    filename: str
    encoding_format: str
    language: str | None


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _obj(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ShapeError(f"{what} is not an object")
    return value


def file_refs(message: dict[str, Any]) -> list[FileRef]:
    """Every file of every document, validated; a malformed list is the message's own fault."""
    documents = message.get("documents", [])
    if not isinstance(documents, list):
        raise ShapeError("documents is not a list")
    refs: list[FileRef] = []
    for index, document in enumerate(documents):
        document = _obj(document, "a document")
        files = document.get("files", [])
        if not _str(document.get("id")) or not isinstance(files, list):
            raise ShapeError(f"document {index} lacks an id or a file list")
        for item in files:
            item = _obj(item, "a file")
            if not _str(item.get("id")):
                raise ShapeError(f"a file of document {index} lacks an id")
            refs.append(FileRef(index, str(document["id"]), str(item["id"]),
                                str(item.get("filename") or item["id"]),
                                str(item.get("encodingFormat") or "application/octet-stream"),
                                _str(item.get("language"))))
    return refs


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _attention(data: Any) -> Attention | None:
    """NgDP `attentionData`, named like MeMo's AttentionData in camelCase [U: no capture of this block]."""
    if not isinstance(data, dict) or not data:
        return None
    person = _obj(data.get("attentionPerson"), "attentionPerson")
    unit = _obj(data.get("productionUnit"), "productionUnit")
    email = _obj(data.get("email"), "email")
    responsible = _obj(data.get("contentResponsible"), "contentResponsible")
    attention = Attention(
        person_id=_str(person.get("personId")), person_name=_str(person.get("label")),
        production_unit=_str(unit.get("productionUnitNumber")), email=_str(email.get("emailAddress")),
        content_responsible_id=_str(responsible.get("contentResponsibleId")),
        content_responsible=_str(responsible.get("label")),
    )
    return attention if attention != Attention() else None


def _forward(data: Any) -> ForwardData | None:
    if not isinstance(data, dict) or not _str(data.get("messageUUID")):
        return None
    return ForwardData(message_uuid=str(data["messageUUID"]), original_sender=_str(data.get("originalSender")),
                       original_message_at=_when(data.get("originalMessageDateTime")),
                       comment=_str(data.get("comment")))


def extract(file: File) -> str:
    """The routing text of the main document; empty while `connectors.text` is not installed."""
    try:
        from connectors.text import extract_text
    except ImportError:
        return ""
    return str(extract_text(file))


def normalize(message: dict[str, Any], contents: dict[str, bytes], *, cvr: str) -> NormalizedMessage:
    """`contents` maps file ids to their downloaded bytes."""
    refs = file_refs(message)
    raw_documents = message.get("documents") or []
    documents: list[Document] = []
    for index, raw in enumerate(raw_documents):
        files = tuple(File(name=r.filename, media_type=r.encoding_format, content=contents[r.file_id],
                           language=r.language) for r in refs if r.document_index == index)
        kind = _KINDS.get(str(raw.get("documentType", "")).upper(),
                          DocumentKind.MAIN if index == 0 else DocumentKind.ADDITIONAL)
        documents.append(Document(kind=kind, files=files,
                                  document_id=_str(raw.get("documentId") or raw.get("id")),
                                  label=_str(raw.get("label"))))
    sender = _obj(message.get("sender"), "sender")
    recipient = _obj(message.get("recipient"), "recipient")
    message_type = str(message.get("messageType") or "REGULAR").upper()
    normalized = NormalizedMessage(
        message_id=str(message["id"]),
        message_type=MessageType.DIGITALPOST,
        title=str(message.get("label") or ""),
        sender=Party(id=_str(sender.get("senderId")), id_type=_str(sender.get("senderIdType")),
                     name=_str(sender.get("label"))),
        recipient=Party(id=_str(recipient.get("recipientId")) or cvr,
                        id_type=_str(recipient.get("recipientIdType")) or "CVR", name=_str(recipient.get("label"))),
        format=FORMAT,
        attention=_attention(recipient.get("attentionData")),
        documents=tuple(documents),
        sent_at=_when(message.get("receivedDateTime")),
        flags=Flags(reply_allowed=bool(message.get("reply")), mandatory=message_type == "MANDATORY",
                    legal_notification=message_type == "LEGAL_NOTIFICATION"),
        post_type=_str(message.get("postType")),
        forward=_forward(message.get("forwardData")),
    )
    main = normalized.main_document
    if main is None or not main.files:
        return normalized
    return replace(normalized, text=extract(main.files[0]))
