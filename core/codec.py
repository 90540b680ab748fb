"""Turns a normalized message into stored rows and back: content JSON sealed, files as attachments."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
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
    ReplyData,
    content_json,
)
from core.logs import mask_cpr
from core.storage.models import Attachment, Message, new_id
from core.storage.vault import Vault


def content_aad(message_id: str) -> str:
    return f"message:{message_id}:content"


def raw_aad(message_id: str) -> str:
    return f"message:{message_id}:raw"


def attachment_aad(attachment_id: str) -> str:
    return f"attachment:{attachment_id}:content"


def ack_ref_aad(message_id: str) -> str:
    return f"message:{message_id}:ack_ref"


def mailbox_state_aad(mailbox_id: int | None) -> str:
    return f"mailbox:{mailbox_id}:state"


def seal(vault: Vault, row: Message, message: NormalizedMessage, raw: bytes | None) -> list[Attachment]:
    """Fill `row`'s sealed columns and clear metadata; return its attachment rows (sealed)."""
    columns, attachments = seal_columns(vault, row.id, message, raw)
    for name, value in columns.items():
        setattr(row, name, value)
    return [Attachment(**attachment) for attachment in attachments]


def seal_columns(vault: Vault, message_id: str, message: NormalizedMessage, raw: bytes | None,
                 document: bytes | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`seal` as column values, for bulk inserts without ORM objects: the message row's sealed and
    clear metadata columns, and its attachment rows' columns (each with its new id). `document` is
    the message's `content_json` when it was made already (where the letter was parsed)."""
    columns: dict[str, Any] = {
        "message_type": message.message_type.value,
        "format": message.format,
        "title": message.title[:500],
        "sender_id": message.sender.id[:255] if message.sender.id else None,
        "sender_name": message.sender.name[:255] if message.sender.name else None,  # indexed: bounded
        "recipient_id": message.recipient.id,
        "sent_at": message.sent_at,
    }
    if document is None:
        document = content_json(message)
    columns["content"] = vault.encrypt(document, content_aad(message_id))
    if raw is not None:
        columns["raw"] = vault.encrypt(raw, raw_aad(message_id))
    attachments = []
    for d, doc in enumerate(message.documents):
        for f, file in enumerate(doc.files):
            attachment_id = new_id()
            attachments.append({
                "id": attachment_id,
                "message_id": message_id,
                "document_index": d,
                "file_index": f,
                "document_kind": doc.kind.value,
                # Clear for listing; the real name travels only in the sealed content.
                "name": mask_cpr(file.name),
                "media_type": file.media_type,
                "size": file.size,
                "content": vault.encrypt(file.content, attachment_aad(attachment_id)),
            })
    return columns, attachments


def unseal(vault: Vault, row: Message, attachments: list[Attachment]) -> NormalizedMessage:
    """The normalized message back from its sealed row and attachments."""
    if row.content is None:
        raise ValueError(f"message {row.id} has no content (purged or quarantined)")
    return unseal_columns(vault, row.id, row.content,
                          [(a.id, a.document_index, a.file_index, a.content) for a in attachments])


def unseal_columns(vault: Vault, message_id: str, content: bytes,
                   files: Iterable[tuple[str, int, int, bytes]]) -> NormalizedMessage:
    """`unseal` from the columns alone: the message's sealed content, and each attachment's id,
    document index, file index and sealed content (read without building the rows)."""
    data = json.loads(vault.decrypt(content, content_aad(message_id)))
    contents = {(document, file): vault.decrypt(sealed, attachment_aad(attachment_id))
                for attachment_id, document, file, sealed in files}
    return message_from_json(data, contents)


def unseal_raw(vault: Vault, row: Message) -> bytes | None:
    return None if row.raw is None else vault.decrypt(row.raw, raw_aad(row.id))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def message_from_json(data: dict[str, Any], contents: dict[tuple[int, int], bytes]) -> NormalizedMessage:
    documents = tuple(
        Document(
            kind=DocumentKind(doc["kind"]),
            document_id=doc.get("document_id"),
            label=doc.get("label"),
            actions=tuple(doc.get("actions") or ()),
            files=tuple(
                File(
                    name=f["name"],
                    media_type=f["media_type"],
                    language=f.get("language"),
                    content=contents.get((d, i), b""),
                )
                for i, f in enumerate(doc["files"])
            ),
        )
        for d, doc in enumerate(data.get("documents") or ())
    )
    forward = data.get("forward")
    return NormalizedMessage(
        message_id=data["message_id"],
        message_type=MessageType(data["message_type"]),
        title=data["title"],
        sender=Party(**data["sender"]),
        recipient=Party(**data["recipient"]),
        format=data["format"],
        attention=Attention(**data["attention"]) if data.get("attention") else None,
        documents=documents,
        sent_at=_dt(data.get("sent_at")),
        flags=Flags(**data.get("flags") or {}),
        notification=data.get("notification"),
        post_type=data.get("post_type"),
        forward=(
            ForwardData(**{**forward, "original_message_at": _dt(forward.get("original_message_at"))})
            if forward
            else None
        ),
        replies=tuple(ReplyData(**r) for r in data.get("replies") or ()),
        content_data=dict(data.get("content_data") or {}),
        text=data.get("text", ""),
    )
