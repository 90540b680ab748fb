"""Safe parsing of e-Boks XML API bodies into small typed records (PROTOCOLS.md §1.3–1.4).

Root element names are not documented (open question 4), so records are found by the local names
of the elements clients do rely on (`User`, `Share`, `FolderInfo`, `MessageInfo`, `AttachmentInfo`,
`ErrorCode`), in the `urn:eboks:mobile:1.0.0` namespace or none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from zoneinfo import ZoneInfo

from lxml import etree

from connectors import safexml

NS = "urn:eboks:mobile:1.0.0"
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")
_CHARSET = re.compile(r"charset=\"?([A-Za-z0-9._-]+)", re.IGNORECASE)
_COPENHAGEN = ZoneInfo("Europe/Copenhagen")


class XmlError(ValueError):
    """A body that is not the XML we expect; `kind` says how (see `XmlProblem`)."""

    def __init__(self, message: str, kind: XmlProblem) -> None:
        super().__init__(message)
        self.kind = kind


class XmlProblem(StrEnum):
    NOT_XML = "not_xml"  # an HTML page or nothing where XML was due: a proxy or outage, retry
    MALFORMED = "malformed"  # XML that does not parse
    UNSAFE = "unsafe"  # a DOCTYPE or entity declaration: refused
    SHAPE = "shape"  # well-formed, but without what the API always sends


@dataclass(frozen=True)
class SessionInfo:
    user_id: str
    name: str


@dataclass(frozen=True)
class ShareInfo:
    share_id: str
    name: str


@dataclass(frozen=True)
class FolderInfo:
    folder_id: str
    name: str
    unread: int
    children: tuple[FolderInfo, ...] = ()

    def walk(self) -> Iterator[FolderInfo]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class AttachmentInfo:
    attachment_id: str
    name: str
    format: str


@dataclass(frozen=True)
class MessageInfo:
    message_id: str
    subject: str
    sender: str
    received: datetime | None
    unread: bool
    format: str
    folder_id: str
    attachments_count: int
    attachments: tuple[AttachmentInfo, ...] = ()
    sender_id: str = ""  # `<Sender id="...">`: e-Boks' own id of the sender (Net-Eboks reads it)


@dataclass(frozen=True)
class ErrorInfo:
    code: str | None
    text: str | None


def decode(raw: bytes, content_type: str | None) -> str:
    """Body bytes as text: the declared charset, else UTF-8, else Latin-1 (bodies come undeclared, §1.4)."""
    proven = safexml.unicode_family(raw)
    if proven is not None and proven != "utf-8":
        # The bytes themselves prove UTF-16/32, whatever a header says.
        try:
            return raw.decode(proven)
        except UnicodeDecodeError:
            pass
    declared = _CHARSET.search(content_type or "")
    in_xml = _DECLARED_ENCODING.match(raw)
    for encoding in (declared.group(1) if declared else None, in_xml.group(1).decode() if in_xml else None):
        if encoding:
            try:
                return raw.decode(encoding)
            except (LookupError, UnicodeDecodeError):
                break  # a lying declaration: fall through to sniffing
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse(raw: bytes, content_type: str | None = None) -> etree._Element:
    """Parse one body with DTDs, entities and network access disabled; a DOCTYPE is refused outright."""
    if "html" in (content_type or "").lower() or not raw.strip():
        raise XmlError(f"expected XML, got {content_type or 'no content type'} ({len(raw)} bytes)",
                       XmlProblem.NOT_XML)
    try:
        return safexml.parse_text(decode(raw, content_type))
    except safexml.UnsafeXmlError as exc:
        raise XmlError(f"the XML carries a DOCTYPE or entity declaration; refused ({exc})", XmlProblem.UNSAFE) from None
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc}", XmlProblem.MALFORMED) from exc


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _find_all(root: etree._Element, name: str) -> Iterator[etree._Element]:
    return (el for el in root.iter() if _local(el) == name)


def _required(el: etree._Element, attr: str) -> str:
    value = el.get(attr)
    if value is None:
        raise XmlError(f"<{_local(el)}> lacks the {attr!r} attribute", XmlProblem.SHAPE)
    return str(value)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Undated offsets are Danish wall-clock time: e-Boks is a Danish service.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_COPENHAGEN)


def parse_session(root: etree._Element) -> SessionInfo:
    user = next(_find_all(root, "User"), None)
    if user is None:
        raise XmlError("logon answer without a <User>", XmlProblem.SHAPE)
    return SessionInfo(user_id=_required(user, "userId"), name=user.get("name", ""))


def parse_shares(root: etree._Element) -> tuple[ShareInfo, ...]:
    shares = [ShareInfo(_required(el, "userId"), el.get("name", "")) for el in _find_all(root, "Share")]
    # ha-eboks reads ShareInfo@id instead [U]; accept both shapes.
    shares += [ShareInfo(_required(el, "id"), el.get("name", "")) for el in _find_all(root, "ShareInfo")]
    return tuple(shares)


def _folders(el: etree._Element) -> tuple[FolderInfo, ...]:
    found: list[FolderInfo] = []
    for child in el:
        if _local(child) == "FolderInfo":
            found.append(FolderInfo(_required(child, "id"), child.get("name", ""),
                                    _int(child.get("unread")), _folders(child)))
        else:
            found.extend(_folders(child))
    return tuple(found)


def parse_folders(root: etree._Element) -> tuple[FolderInfo, ...]:
    if _local(root) == "FolderInfo":
        return (FolderInfo(_required(root, "id"), root.get("name", ""), _int(root.get("unread")),
                           _folders(root)),)
    return _folders(root)


def _message(el: etree._Element) -> MessageInfo:
    sender = next((c for c in el if _local(c) == "Sender"), None)
    attachments = tuple(
        AttachmentInfo(_required(a, "id"), a.get("name", ""), a.get("format", "").lower())
        for a in _find_all(el, "AttachmentInfo")
    )
    return MessageInfo(
        message_id=_required(el, "id"),
        subject=el.get("name", ""),
        sender="".join(str(t) for t in sender.itertext()).strip() if sender is not None else "",
        sender_id=(sender.get("id") or "").strip() if sender is not None else "",
        received=_datetime(el.get("receivedDateTime")),
        unread=el.get("unread", "false").lower() == "true",
        format=el.get("format", "").lower(),
        folder_id=el.get("folderId", ""),
        attachments_count=_int(el.get("attachmentsCount")),
        attachments=attachments,
    )


def parse_messages(root: etree._Element) -> tuple[MessageInfo, ...]:
    return tuple(_message(el) for el in _find_all(root, "MessageInfo"))


def parse_message(root: etree._Element) -> MessageInfo:
    """A message detail: the root carries the MessageInfo attributes (or wraps one MessageInfo)."""
    if root.get("id") is not None:
        return _message(root)
    inner = next(_find_all(root, "MessageInfo"), None)
    if inner is None:
        raise XmlError("message detail without an id", XmlProblem.SHAPE)
    return _message(inner)


def parse_error(raw: bytes, content_type: str | None) -> ErrorInfo:
    """The `ErrorCode`/`ErrorText` of an error body; empty when the body is not that shape."""
    try:
        root = parse(raw, content_type)
    except XmlError:
        return ErrorInfo(None, None)
    code = next(_find_all(root, "ErrorCode"), None)
    text = next(_find_all(root, "ErrorText"), None)
    return ErrorInfo(code.text if code is not None else None, text.text if text is not None else None)


def utc(dt: datetime | None) -> datetime | None:
    return dt.astimezone(timezone.utc) if dt else None
