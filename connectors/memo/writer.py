"""Writes a `NormalizedMessage` as MeMo 1.1 / 1.2 XML with the literal `memo:` prefix real senders use."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime

from lxml import etree

from connectors.memo.errors import MemoError
from connectors.memo.fields import (
    ACTION_KEYS,
    CONTENT_LEAVES,
    RESERVATION_KEYS,
    attention_from_items,
    q,
    write_address,
    write_attention,
    write_contact_point,
    write_leaves,
)
from connectors.memo.schema import MEMO, PREFIXES, VERSIONS
from core.domain import Document, DocumentKind, MessageType, NormalizedMessage

_KIND_ELEMENTS = {
    DocumentKind.MAIN: ("MainDocument", "mainDocumentID"),
    DocumentKind.ADDITIONAL: ("AdditionalDocument", "additionalDocumentID"),
    DocumentKind.TECHNICAL: ("TechnicalDocument", "technicalDocumentID"),
}
_KIND_ORDER = (DocumentKind.MAIN, DocumentKind.ADDITIONAL, DocumentKind.TECHNICAL)
DEFAULT_LANGUAGE = "da"


def build_memo(message: NormalizedMessage, *, version: str = "1.1") -> bytes:
    """Serialize `message` as MeMo `version`; the inverse of `parse_memo` for every field it reads.

    `content_data` keys (see `connectors.memo.fields`) fill the header parts the model has no field
    for. A file without a language is written as "da"; `sent_at` (tz-aware) becomes createdDateTime,
    now when absent. The output is validated before it is returned: a message that cannot be valid
    MeMo (a non-UUID message_id, a 300-character title, an e-mail) raises ValueError saying why.
    """
    if version not in VERSIONS:
        raise ValueError(f"MeMo version must be one of {', '.join(VERSIONS)}, not {version!r}")
    if message.message_type is MessageType.EMAIL:
        raise ValueError("an EMAIL message cannot be written as MeMo")
    root = etree.Element(q(MEMO, "Message"), nsmap={prefix: ns for ns, prefix in PREFIXES.items()})
    root.set("memoVersion", version)
    if version == "1.1":
        root.set("memoSchVersion", "1.1.0")
    _header(etree.SubElement(root, q(MEMO, "MessageHeader")), message, version)
    if message.documents:
        _body(etree.SubElement(root, q(MEMO, "MessageBody")), message)
    raw: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    # Imported late: the reader imports this package's __init__, which imports this module.
    from connectors.memo.reader import validate_memo

    try:
        validate_memo(raw, max_bytes=len(raw))
    except MemoError as error:
        raise ValueError(f"message cannot be written as valid MeMo {version}: {error}") from None
    return raw


def _add(parent: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(parent, q(MEMO, name)).text = value


def _datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("MeMo date-times must be timezone-aware")
    utc = value.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _header(header: etree._Element, message: NormalizedMessage, version: str) -> None:
    items = message.content_data
    v12 = version == "1.2"
    _add(header, "messageType", message.message_type.value)
    _add(header, "messageUUID", message.message_id)
    _add(header, "messageID", items.get("memo_message_id"))
    _add(header, "messageCode", items.get("message_code"))
    _add(header, "label", message.title)
    _add(header, "notification", message.notification)
    _add(header, "additionalNotification", items.get("additional_notification"))
    if message.flags.reply_allowed:
        _add(header, "reply", "true")
    _add(header, "replyByDateTime", items.get("reply_by"))
    _add(header, "doNotDeliverUntilDate", items.get("do_not_deliver_until"))
    # 1.1 requires both flags; 1.2 made them optional, so only a raised flag is written there.
    if not v12 or message.flags.mandatory:
        _add(header, "mandatory", _bool(message.flags.mandatory))
    if not v12 or message.flags.legal_notification:
        _add(header, "legalNotification", _bool(message.flags.legal_notification))
    _add(header, "postType", message.post_type)
    _sender(etree.SubElement(header, q(MEMO, "Sender")), message, v12=v12)
    _recipient(etree.SubElement(header, q(MEMO, "Recipient")), message)
    _content(header, items)
    _forward(header, message, v12=v12)
    for n, reply in enumerate(message.replies):
        element = etree.SubElement(header, q(MEMO, "ReplyData"))
        _add(element, "messageID", reply.message_id)
        _add(element, "messageUUID", reply.message_uuid)
        _add(element, "replyUUID", reply.reply_uuid)
        _add(element, "senderID", reply.sender_id)
        _add(element, "recipientID", reply.recipient_id)
        _add(element, "caseID", reply.case_id)
        _add(element, "contactPointID", items.get(f"reply.{n}.contact_point_id"))
        _add(element, "generatingSystemID", items.get(f"reply.{n}.generating_system_id"))
        _add(element, "comment", reply.comment)
        _extras(element, items, f"reply.{n}.extra.", "AdditionalReplyData", ("label", "value"))


def _extras(
    parent: etree._Element, items: Mapping[str, str], prefix: str, element: str, names: tuple[str, str]
) -> None:
    for key, value in items.items():
        if key.startswith(prefix):
            extra = etree.SubElement(parent, q(MEMO, element))
            _add(extra, names[0], key[len(prefix):])
            _add(extra, names[1], value)


def _sender(sender: etree._Element, message: NormalizedMessage, *, v12: bool) -> None:
    items = message.content_data
    _add(sender, "senderID", message.sender.id)
    _add(sender, "idType", message.sender.id_type)
    _add(sender, "idTypeLabel", items.get("sender_id_type_label"))
    _add(sender, "label", message.sender.name)
    write_attention(sender, attention_from_items("sender_attention.", items))
    write_contact_point(sender, "sender_", items)
    keys = ("id", "id_type", "id_type_label", "label")
    if v12 and any(f"representative_{k}" in items for k in keys):
        representative = etree.SubElement(sender, q(MEMO, "Representative"))
        for key, name in zip(keys, ("representativeID", "idType", "idTypeLabel", "label"), strict=True):
            _add(representative, name, items.get(f"representative_{key}"))


def _recipient(recipient: etree._Element, message: NormalizedMessage) -> None:
    _add(recipient, "recipientID", message.recipient.id)
    _add(recipient, "idType", message.recipient.id_type)
    _add(recipient, "idTypeLabel", message.content_data.get("recipient_id_type_label"))
    _add(recipient, "label", message.recipient.name)
    write_attention(recipient, message.attention)
    write_contact_point(recipient, "recipient_", message.content_data)


def _content(header: etree._Element, items: Mapping[str, str]) -> None:
    keys = {leaf.key for leaf in CONTENT_LEAVES} | {"address"}
    if not any(k in keys or k.startswith("additional.") for k in items):
        return
    content = etree.SubElement(header, q(MEMO, "ContentData"))
    write_leaves(content, CONTENT_LEAVES, items)
    write_address(content, items.get("address"))
    prefix = "additional."
    for key, value in items.items():
        if key.startswith(prefix):
            extra = etree.SubElement(content, q(MEMO, "AdditionalContentData"))
            _add(extra, "contentDataName", key[len(prefix):])
            _add(extra, "contentDataValue", value)


def _forward(header: etree._Element, message: NormalizedMessage, *, v12: bool) -> None:
    forward = message.forward
    if forward is None:
        return
    element = etree.SubElement(header, q(MEMO, "ForwardData"))
    _add(element, "messageUUID", forward.message_uuid)
    if forward.original_message_at is not None:
        _add(element, "originalMessageDateTime", _datetime(forward.original_message_at))
    _add(element, "originalSender", forward.original_sender)
    _add(element, "originalContentResponsible", forward.original_content_responsible)
    if v12:
        _add(element, "originalRepresentative", message.content_data.get("forward_original_representative"))
    _add(element, "contactPointID", message.content_data.get("forward_contact_point_id"))
    _add(element, "comment", forward.comment)


def _body(body: etree._Element, message: NormalizedMessage) -> None:
    _add(body, "createdDateTime", _datetime(message.sent_at or datetime.now(UTC)))
    for kind in _KIND_ORDER:
        for document in message.documents:
            if document.kind is kind:
                _document(body, document)


def _document(body: etree._Element, document: Document) -> None:
    name, id_name = _KIND_ELEMENTS[document.kind]
    element = etree.SubElement(body, q(MEMO, name))
    _add(element, id_name, document.document_id)
    _add(element, "label", document.label)
    for file in document.files:
        file_element = etree.SubElement(element, q(MEMO, "File"))
        _add(file_element, "encodingFormat", file.media_type)
        _add(file_element, "filename", file.name)
        _add(file_element, "language", file.language or DEFAULT_LANGUAGE)
        _add(file_element, "content", base64.b64encode(file.content).decode("ascii"))
    if document.kind is DocumentKind.TECHNICAL:
        return  # technical documents carry no actions in MeMo
    for action in document.actions:
        action_element = etree.SubElement(element, q(MEMO, "Action"))
        for key, tag in ACTION_KEYS:
            _add(action_element, tag, action.get(key))
        if "url" in action:
            _add(etree.SubElement(action_element, q(MEMO, "EntryPoint")), "url", action["url"])
        elif any(key in action for key, _ in RESERVATION_KEYS):
            reservation = etree.SubElement(action_element, q(MEMO, "Reservation"))
            for key, tag in RESERVATION_KEYS:
                _add(reservation, tag, action.get(key))
