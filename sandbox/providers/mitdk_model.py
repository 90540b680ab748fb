"""The fake mit.dk's mailboxes and the JSON it renders (the NgDP resource model, PROTOCOLS.md §2.3, §3.4)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from core.domain import Attention, DocumentKind, File, MessageType, NormalizedMessage

SOURCE = "DP_PUBLIC"
_NS = uuid.UUID("6f1c5d0e-0a4b-4e61-9c1e-3d2b7a9f0e11")


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


@dataclass
class StoredFile:
    document_id: str
    content: bytes
    encoding_format: str
    first: bool  # the message's first file: its download counts as fetching the message


@dataclass
class FakeMessage:
    key: str
    folder_id: str
    mailbox_id: str
    source: NormalizedMessage
    documents: list[dict[str, Any]]
    files: dict[str, StoredFile]
    version: int = 1
    read: bool = False


@dataclass
class Mailbox:
    mailbox_id: str
    owner_name: str
    owner_id: str
    owner_id_type: str
    folders: dict[str, str]
    messages: dict[str, FakeMessage] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        # Only what PROTOCOLS.md §2.3 documents: the owner's id and its type are not in the listing.
        return {"id": self.mailbox_id, "dataSource": SOURCE, "ownerName": self.owner_name}

    def newest_first(self) -> list[FakeMessage]:
        return sorted(self.messages.values(), key=lambda m: (m.source.sent_at or datetime.min.replace(
            tzinfo=timezone.utc), m.key), reverse=True)

    def add(self, message: NormalizedMessage) -> None:
        documents, files = _documents(message)
        self.messages[message.message_id] = FakeMessage(message.message_id, self.folders["INBOX"],
                                                        self.mailbox_id, message, documents, files)


def new_mailbox(owner_name: str, owner: str, owner_type: str = "CVR") -> Mailbox:
    mailbox_id = _id("mailbox", owner)
    return Mailbox(mailbox_id, owner_name, owner, owner_type,
                   {kind: _id("folder", owner, kind) for kind in ("INBOX", "SENT", "DELETED")})


def _documents(message: NormalizedMessage) -> tuple[list[dict[str, Any]], dict[str, StoredFile]]:
    sources = [(d.kind, d.label, d.document_id, d.files) for d in message.documents if d.files]
    if not sources:  # a NemSMS-like message: mit.dk shows its notification as a text document
        text = File("besked.txt", "text/plain", (message.notification or message.title).encode("utf-8"))
        sources = [(DocumentKind.MAIN, message.title, None, (text,))]
    documents: list[dict[str, Any]] = []
    stored: dict[str, StoredFile] = {}
    for index, (kind, label, document_id, files) in enumerate(sources):
        doc_id = _id(message.message_id, "document", str(index))
        entries = []
        for n, file in enumerate(files):
            file_id = _id(message.message_id, "file", str(index), str(n))
            stored[file_id] = StoredFile(doc_id, file.content, file.media_type, first=not stored)
            entries.append({"id": file_id, "version": 1, "filename": file.name, "encodingFormat": file.media_type,
                            "language": file.language or "da", "fileSize": file.size})
        documents.append({"id": doc_id, "version": 1, "documentType": kind.value.upper(),
                          "documentId": document_id or doc_id, "label": label, "files": entries})
    return documents, stored


def _attention(attention: Attention | None) -> dict[str, Any] | None:
    if attention is None:
        return None
    data: dict[str, Any] = {}
    if attention.person_name or attention.person_id:
        data["attentionPerson"] = {"personId": attention.person_id, "label": attention.person_name}
    if attention.production_unit:
        data["productionUnit"] = {"productionUnitNumber": attention.production_unit}
    if attention.email:
        data["email"] = {"emailAddress": attention.email}
    if attention.content_responsible:
        data["contentResponsible"] = {"contentResponsibleId": attention.content_responsible_id,
                                      "label": attention.content_responsible}
    return data or None


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z") if when else None


def message_json(message: FakeMessage, *, poisoned: bool = False) -> dict[str, Any]:
    """A `Message` as mit.dk's queries return it; a poisoned one has a documents list no client can read."""
    source = message.source
    flags = source.flags
    message_type = ("LEGAL_NOTIFICATION" if flags.legal_notification else "MANDATORY" if flags.mandatory
                    else "REGULAR")
    body: dict[str, Any] = {
        "id": message.key,
        "dataSource": SOURCE,
        "mailboxId": message.mailbox_id,
        "folderId": message.folder_id,
        "version": message.version,
        "label": source.title,
        "messageType": message_type,
        "messageState": "RECEIVED",
        "read": message.read,
        "reply": flags.reply_allowed,
        "receivedDateTime": _iso(source.sent_at),
        "postType": source.post_type,
        "sender": {"senderId": source.sender.id, "senderIdType": source.sender.id_type,
                   "label": source.sender.name},
        "recipient": {"recipientId": source.recipient.id, "recipientIdType": source.recipient.id_type,
                      "label": source.recipient.name, "attentionData": _attention(source.attention)},
        "documents": "<<corrupt>>" if poisoned else message.documents,
    }
    if source.forward is not None:
        body["forwardData"] = {"messageUUID": source.forward.message_uuid,
                               "originalSender": source.forward.original_sender,
                               "originalMessageDateTime": _iso(source.forward.original_message_at),
                               "comment": source.forward.comment}
    if source.message_type is MessageType.NEMSMS:
        body["notification"] = source.notification
    return body
