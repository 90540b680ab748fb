"""The normalized message model: what every connector produces and every later stage reads.

A provider's own format (MeMo XML, e-Boks XML, mit.dk JSON, an .eml file) is translated into these
frozen dataclasses at the connector boundary; nothing after the connectors sees provider shapes.
Field names are public: `postbud inspect --json` prints them, and rules match on them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class MessageType(StrEnum):
    DIGITALPOST = "DIGITALPOST"
    NEMSMS = "NEMSMS"
    EMAIL = "EMAIL"


class DocumentKind(StrEnum):
    MAIN = "main"
    ADDITIONAL = "additional"
    TECHNICAL = "technical"


@dataclass(frozen=True)
class Party:
    """A sender or recipient: an id with its type (CVR, CPR, SE, EMAIL, ...) and a display name."""

    id: str | None = None
    id_type: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Attention:
    """MeMo AttentionData: who inside the recipient company the letter is for (the strongest routing key)."""

    person_id: str | None = None
    person_name: str | None = None
    production_unit: str | None = None
    gln: str | None = None
    email: str | None = None
    se_number: str | None = None
    telephone: str | None = None
    eid: str | None = None
    content_responsible_id: str | None = None
    content_responsible: str | None = None
    generating_system_id: str | None = None
    generating_system: str | None = None
    sor: str | None = None
    # The address in one line: the structured grd:Address when given (in MeMo 1.1 and 1.2 alike),
    # else the unstructured one; both are kept as given below.
    address: str | None = None
    production_unit_name: str | None = None
    gln_location: str | None = None
    email_related_agent: str | None = None
    telephone_related_agent: str | None = None
    se_company_name: str | None = None
    eid_label: str | None = None
    sor_name: str | None = None
    unstructured_address: str | None = None
    address_parts: dict[str, str] | None = None  # grd:Address leaves (addressLabel, zipCode, ...; AddressPoint.*)

    def labels(self) -> tuple[str, ...]:
        """The human-readable names in this block, for fuzzy matching against recipients."""
        return tuple(v for v in (self.person_name, self.content_responsible, self.email) if v)


@dataclass(frozen=True)
class File:
    """One file of a document. `content` is the decoded bytes, never base64."""

    name: str
    media_type: str
    content: bytes = field(repr=False)
    language: str | None = None

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class Document:
    kind: DocumentKind
    files: tuple[File, ...]
    document_id: str | None = None
    label: str | None = None
    actions: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Flags:
    reply_allowed: bool = False
    mandatory: bool = False
    legal_notification: bool = False


@dataclass(frozen=True)
class ForwardData:
    message_uuid: str
    original_sender: str | None = None
    original_message_at: datetime | None = None
    original_content_responsible: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class ReplyData:
    message_uuid: str
    message_id: str | None = None
    reply_uuid: str | None = None
    sender_id: str | None = None
    recipient_id: str | None = None
    case_id: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class NormalizedMessage:
    """A message as postbud understands it, whatever mailbox it came from.

    `message_id` is the provider's identity of the message (the MeMo messageUUID, the e-Boks message
    id, an e-mail's Message-ID). `text` is the extracted text of the main document (bounded in size)
    that rules and the model read. `format` names what was parsed: memo-1.1, memo-1.2, eml, ...
    """

    message_id: str
    message_type: MessageType
    title: str
    sender: Party
    recipient: Party
    format: str
    attention: Attention | None = None
    documents: tuple[Document, ...] = ()
    sent_at: datetime | None = None
    flags: Flags = Flags()
    notification: str | None = None
    post_type: str | None = None
    forward: ForwardData | None = None
    replies: tuple[ReplyData, ...] = ()
    content_data: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def main_document(self) -> Document | None:
        return next((d for d in self.documents if d.kind is DocumentKind.MAIN), None)

    def files(self) -> tuple[File, ...]:
        return tuple(f for d in self.documents for f in d.files)

    def to_json(self, *, include_content: bool = False) -> dict[str, Any]:
        """A JSON-ready dict whose keys are this model's field names (file bytes become sizes)."""
        out = _jsonable(self, include_content=include_content)
        assert isinstance(out, dict)
        return out


def content_json(message: NormalizedMessage) -> bytes:
    """The message as its row's sealed content holds it (UTF-8 JSON of `to_json`). Made where the
    letter is parsed when it can be (a drop folder's parse worker), so the daemon only seals it."""
    return json.dumps(message.to_json(), ensure_ascii=False).encode("utf-8")


def _jsonable(value: Any, *, include_content: bool) -> Any:
    if isinstance(value, File):
        out: dict[str, Any] = {
            "name": value.name,
            "media_type": value.media_type,
            "language": value.language,
            "size": value.size,
        }
        if include_content:
            import base64

            out["content"] = base64.b64encode(value.content).decode("ascii")
        return out
    kind = type(value)
    if value is None or kind in _PLAIN:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        fields: dict[str, Any] = {}
        for name in names:  # most fields are None or text: no call for those
            item = getattr(value, name)
            plain = item is None or type(item) in _PLAIN
            fields[name] = item if plain else _jsonable(item, include_content=include_content)
        return fields
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, include_content=include_content) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v, include_content=include_content) for k, v in value.items()}
    return value


# Every message is serialised when it is stored: a dataclass's field names are looked up once per type.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset({str, int, float, bool})
