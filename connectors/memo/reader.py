"""Reads MeMo 1.1 / 1.2 XML safely into a `NormalizedMessage`."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree

from connectors import safexml
from connectors.memo.errors import MemoError
from connectors.memo.fields import (
    ACTION_KEYS,
    CONTENT_LEAVES,
    RESERVATION_KEYS,
    attention_to_items,
    q,
    read_address,
    read_address_parts,
    read_unstructured,
    read_attention,
    read_contact_point,
    read_leaves,
    text_of,
)
from connectors.memo.schema import MEMO, decode_base64, shown
from connectors.memo.tree import Node
from connectors.memo.validate import validate
from connectors.text import extract_text
from core.domain import (
    Document,
    DocumentKind,
    File,
    Flags,
    ForwardData,
    MessageType,
    NormalizedMessage,
    Party,
    ReplyData,
)

MAX_BYTES = 50 * 1024 * 1024

_DOCUMENT_KINDS = (
    ("MainDocument", "mainDocumentID", DocumentKind.MAIN),
    ("AdditionalDocument", "additionalDocumentID", DocumentKind.ADDITIONAL),
    ("TechnicalDocument", "technicalDocumentID", DocumentKind.TECHNICAL),
)


@functools.cache  # some 60 names read per letter: each made once, not once a read
def _m(name: str) -> str:
    return q(MEMO, name)


def parse_memo(raw: bytes, *, max_bytes: int = MAX_BYTES) -> NormalizedMessage:
    """Parse and validate one MeMo message; raise `MemoError` (carrying `raw`) if it is not valid MeMo.

    Accepts any namespace prefix and a UTF-8 BOM. Refuses DOCTYPEs and entities outright, never
    touches the network, and refuses input over `max_bytes`. `message_id` is the messageUUID in
    lower case; `text` is the extracted text of the main document (the notification for NEMSMS).
    """
    try:
        root, version = _load(raw, max_bytes)
        return _normalize(root, version)
    except MemoError as error:
        error.raw = raw
        raise
    except RecursionError:
        raise MemoError("nested too deeply to read", raw=raw) from None
    except Exception as error:  # noqa: BLE001 - whatever breaks on hostile input, this letter is unusable
        raise MemoError(f"unreadable MeMo: {type(error).__name__}: {error}"[:300], raw=raw) from None


def validate_memo(raw: bytes, *, max_bytes: int = MAX_BYTES) -> str:
    """Check `raw` is valid MeMo without normalizing it; return its version ("1.1" or "1.2")."""
    try:
        return _load(raw, max_bytes)[1]
    except MemoError as error:
        error.raw = raw
        raise


def _load(raw: bytes, max_bytes: int) -> tuple[Node, str]:
    root = _parse_xml(raw, max_bytes)
    version = _version(root)
    return validate(root, version), version


def _parse_xml(raw: bytes, max_bytes: int) -> etree._Element:
    if len(raw) > max_bytes:
        raise MemoError(f"message is {len(raw)} bytes, over the limit of {max_bytes}")
    if not raw.strip():
        raise MemoError("message is empty")
    # huge_tree lifts libxml2's 10 MB text-node cap, so a real attachment over ~7.5 MB is not refused;
    # it is safe here because no DTD (hence no entity) gets through and the size is bounded above.
    try:
        return safexml.parse(raw, huge_tree=True)
    except safexml.UnsafeXmlError as error:
        raise MemoError(str(error)) from None
    except etree.XMLSyntaxError as error:
        raise MemoError(_syntax_reason(str(error))) from None


def _syntax_reason(message: str) -> str:
    # libxml2's remaining hard limits are not syntax errors: name them.
    if "Excessive depth" in message:
        return f"elements are nested deeper than the parser's limit of 256: {message}"
    if "XML_PARSE_HUGE" in message:
        return f"over the XML parser's safety limits: {message}"
    return f"not well-formed XML: {message}"


def _version(root: etree._Element) -> str:
    if root.tag != _m("Message"):
        raise MemoError(f"root element is {etree.QName(root).localname!r} in namespace "
                        f"{etree.QName(root).namespace!r}, expected memo:Message")
    declared = root.get("memoVersion")
    if declared is None:
        raise MemoError("Message: required attribute 'memoVersion' missing")
    try:
        number = Decimal(declared.strip())
    except InvalidOperation:
        raise MemoError(f"Message/@memoVersion {shown(declared)} is not a decimal number") from None
    for version in ("1.1", "1.2"):
        if number == Decimal(version):
            return version
    raise MemoError(f"Message/@memoVersion {shown(declared)} is not a supported MeMo version (1.1, 1.2)")


def _flag(header: Node, name: str) -> bool:
    return text_of(header, _m(name)) in ("true", "1")


def _datetime(value: str | None) -> datetime | None:
    # Validation guaranteed the `...Z` form, which fromisoformat reads as UTC.
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _lower(value: str | None) -> str | None:
    return value.lower() if value else value


def _normalize(root: Node, version: str) -> NormalizedMessage:
    header = root.first(_m("MessageHeader"))
    assert header is not None  # validated
    sender_el = header.first(_m("Sender"))
    recipient_el = header.first(_m("Recipient"))
    body = root.first(_m("MessageBody"))
    message_type = MessageType(text_of(header, _m("messageType")) or "")
    notification = text_of(header, _m("notification"))
    documents = _documents(body)
    return NormalizedMessage(
        message_id=(text_of(header, _m("messageUUID")) or "").lower(),
        message_type=message_type,
        title=text_of(header, _m("label")) or "",
        sender=_party(sender_el, "senderID"),
        recipient=_party(recipient_el, "recipientID"),
        format=f"memo-{version}",
        attention=read_attention(_find(recipient_el, "AttentionData")),
        documents=documents,
        sent_at=_datetime(text_of(body, _m("createdDateTime"))),
        flags=Flags(
            reply_allowed=_flag(header, "reply"),
            mandatory=_flag(header, "mandatory"),
            legal_notification=_flag(header, "legalNotification"),
        ),
        notification=notification,
        post_type=text_of(header, _m("postType")),
        forward=_forward(header.first(_m("ForwardData"))),
        replies=tuple(_reply(r) for r in header.all(_m("ReplyData"))),
        content_data=_content_data(header),
        text=_text(message_type, notification, documents),
    )


def _find(parent: Node | None, name: str) -> Node | None:
    return None if parent is None else parent.first(_m(name))


def _party(element: Node | None, id_name: str) -> Party:
    return Party(
        id=text_of(element, _m(id_name)),
        id_type=text_of(element, _m("idType")),
        name=text_of(element, _m("label")),
    )


def _forward(element: Node | None) -> ForwardData | None:
    if element is None:
        return None
    return ForwardData(
        message_uuid=(text_of(element, _m("messageUUID")) or "").lower(),
        original_sender=text_of(element, _m("originalSender")),
        original_message_at=_datetime(text_of(element, _m("originalMessageDateTime"))),
        original_content_responsible=text_of(element, _m("originalContentResponsible")),
        comment=text_of(element, _m("comment")),
    )


def _reply(element: Node) -> ReplyData:
    return ReplyData(
        message_uuid=(text_of(element, _m("messageUUID")) or "").lower(),
        message_id=text_of(element, _m("messageID")),
        reply_uuid=_lower(text_of(element, _m("replyUUID"))),
        sender_id=text_of(element, _m("senderID")),
        recipient_id=text_of(element, _m("recipientID")),
        case_id=text_of(element, _m("caseID")),
        comment=text_of(element, _m("comment")),
    )


def _content_data(header: Node) -> dict[str, str]:
    """Every header value the model has no field for, under the keys listed in `fields`."""
    items: dict[str, str] = {}

    def put(key: str, value: str | None) -> None:
        if value is not None:
            items[key] = value

    for key, name in (
        ("memo_message_id", "messageID"),
        ("message_code", "messageCode"),
        ("additional_notification", "additionalNotification"),
        ("reply_by", "replyByDateTime"),
        ("do_not_deliver_until", "doNotDeliverUntilDate"),
    ):
        put(key, text_of(header, _m(name)))
    sender = header.first(_m("Sender"))
    put("sender_id_type_label", text_of(sender, _m("idTypeLabel")))
    items.update(attention_to_items("sender_attention.", read_attention(_find(sender, "AttentionData"))))
    items.update(read_contact_point(_find(sender, "ContactPoint"), "sender_"))
    representative = _find(sender, "Representative")
    for key, name in (("id", "representativeID"), ("id_type", "idType"), ("id_type_label", "idTypeLabel"),
                      ("label", "label")):
        put(f"representative_{key}", text_of(representative, _m(name)))
    recipient = header.first(_m("Recipient"))
    put("recipient_id_type_label", text_of(recipient, _m("idTypeLabel")))
    items.update(read_contact_point(_find(recipient, "ContactPoint"), "recipient_"))
    content = header.first(_m("ContentData"))
    items.update(read_leaves(content, CONTENT_LEAVES))
    put("address", read_address(content))
    put("unstructured_address", read_unstructured(content))
    for part, text in (read_address_parts(content) or {}).items():
        put(f"address_parts.{part}", text)
    for extra in _findall(content, "AdditionalContentData"):
        data_name = text_of(extra, _m("contentDataName"))
        if data_name is not None:
            items[f"additional.{data_name}"] = text_of(extra, _m("contentDataValue")) or ""
    forward = header.first(_m("ForwardData"))
    put("forward_original_representative", text_of(forward, _m("originalRepresentative")))
    put("forward_contact_point_id", text_of(forward, _m("contactPointID")))
    for n, reply in enumerate(header.all(_m("ReplyData"))):
        put(f"reply.{n}.contact_point_id", text_of(reply, _m("contactPointID")))
        put(f"reply.{n}.generating_system_id", text_of(reply, _m("generatingSystemID")))
        for extra in reply.all(_m("AdditionalReplyData")):
            label = text_of(extra, _m("label"))
            if label is not None:
                items[f"reply.{n}.extra.{label}"] = text_of(extra, _m("value")) or ""
    return items


def _findall(parent: Node | None, name: str) -> list[Node]:
    return [] if parent is None else parent.all(_m(name))


def _documents(body: Node | None) -> tuple[Document, ...]:
    documents: list[Document] = []
    for element_name, id_name, kind in _DOCUMENT_KINDS:
        for element in _findall(body, element_name):
            documents.append(Document(
                kind=kind,
                files=tuple(_file(f) for f in element.all(_m("File"))),
                document_id=text_of(element, _m(id_name)),
                label=text_of(element, _m("label")),
                actions=tuple(_action(a) for a in element.all(_m("Action"))),
            ))
    return tuple(documents)


def _file(element: Node) -> File:
    content = element.first(_m("content"))
    if content is None:
        data = b""
    else:  # validation decoded the content, unless comments split its text
        data = content.data if content.data is not None else decode_base64(content.text or "")
    return File(
        name=text_of(element, _m("filename")) or "",
        media_type=text_of(element, _m("encodingFormat")) or "application/octet-stream",
        content=data,
        language=text_of(element, _m("language")),
    )


def _action(element: Node) -> dict[str, str]:
    action = {key: value for key, name in ACTION_KEYS if (value := text_of(element, _m(name))) is not None}
    url = text_of(element, _m("EntryPoint"), _m("url"))
    if url is not None:
        action["url"] = url
    reservation = element.first(_m("Reservation"))
    for key, name in RESERVATION_KEYS:
        value = text_of(reservation, _m(name))
        if value is not None:
            action[key] = value
    return action


def _text(message_type: MessageType, notification: str | None, documents: tuple[Document, ...]) -> str:
    if message_type is MessageType.NEMSMS:
        return notification or ""
    main = next((d for d in documents if d.kind is DocumentKind.MAIN), None)
    for file in main.files if main else ():
        # The first file that yields text: a main document may carry a PDF and its text rendition.
        text = extract_text(file)
        if text:
            return text
    return ""
