"""The fake e-Boks' mailbox model and its XML rendering (shapes as PROTOCOLS.md §1.3–1.4 and §4.1 describe)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from core.domain import File, NormalizedMessage

NS = "urn:eboks:mobile:1.0.0"
_COPENHAGEN = ZoneInfo("Europe/Copenhagen")
_FORMATS = {"application/pdf": "PDF", "text/html": "html", "text/plain": "plain", "application/xml": "xml",
            "image/jpeg": "jpg", "image/png": "png"}


@dataclass
class FakeAttachment:
    attachment_id: str
    name: str
    format: str
    content: bytes


@dataclass
class FakeMessage:
    message_id: str
    subject: str
    sender: str
    received: datetime
    format: str
    body: bytes
    attachments: list[FakeAttachment] = field(default_factory=list)
    public: bool = False
    unread: bool = True
    sender_id: str = ""  # rendered as <Sender id="...">


@dataclass
class FakeFolder:
    folder_id: str
    name: str
    messages: list[FakeMessage] = field(default_factory=list)
    children: list[FakeFolder] = field(default_factory=list)

    def walk(self) -> list[FakeFolder]:
        return [self, *(f for child in self.children for f in child.walk())]


@dataclass
class FakeShare:
    share_id: str
    name: str
    cvr: str
    folders: list[FakeFolder]
    _messages: dict[str, tuple[FakeFolder, FakeMessage]] = field(default_factory=dict)
    _contents: dict[str, tuple[FakeMessage, FakeAttachment]] = field(default_factory=dict)

    def folder(self, folder_id: str) -> FakeFolder | None:
        return next((f for top in self.folders for f in top.walk() if f.folder_id == folder_id), None)

    def add(self, folder: FakeFolder, message: FakeMessage) -> None:
        folder.messages.append(message)
        folder.messages.sort(key=lambda m: m.received, reverse=True)  # newest first, as the app shows
        self._messages[message.message_id] = (folder, message)
        for att in message.attachments:
            self._contents[att.attachment_id] = (message, att)

    def clear(self) -> None:
        for top in self.folders:
            for folder in top.walk():
                folder.messages.clear()
        self._messages.clear()
        self._contents.clear()

    def find(self, message_id: str) -> tuple[FakeFolder, FakeMessage] | None:
        return self._messages.get(message_id)

    def find_content(self, content_id: str) -> tuple[FakeMessage, bytes, bool] | None:
        """(message, bytes, is_body) for a message id or an attachment id (the /content namespace)."""
        if content_id in self._messages:
            message = self._messages[content_id][1]
            return message, message.body, True
        if content_id in self._contents:
            message, att = self._contents[content_id]
            return message, att.content, False
        return None


def new_share(share_id: str, name: str, cvr: str, first_folder_id: int) -> FakeShare:
    """A share with the folders e-Boks shows in `en-gb`: Inbox (with a subfolder), Archive, Deleted."""
    inbox = FakeFolder(str(first_folder_id), "Inbox",
                       children=[FakeFolder(str(first_folder_id + 3), "Kunder")])
    return FakeShare(share_id, name, cvr, [
        inbox, FakeFolder(str(first_folder_id + 1), "Archive"), FakeFolder(str(first_folder_id + 2), "Deleted"),
    ])


def _format(file: File) -> str:
    return _FORMATS.get(file.media_type.split(";")[0].strip().lower(), "PDF")


def from_normalized(message: NormalizedMessage) -> FakeMessage:
    """The e-Boks view of a generated message: the main file is the body, other files are attachments."""
    main = message.main_document
    if main is not None and main.files:
        body_file = main.files[0]
        body, fmt = body_file.content, _format(body_file)
    else:  # NemSMS and the like: only a notification, served as a plain-text body
        body, fmt = (message.notification or message.title).encode("utf-8"), "plain"
    extra = [f for d in message.documents if d is not main for f in d.files]
    attachments = [
        FakeAttachment(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{message.message_id}/{n}")),
                       f.name.rsplit(".", 1)[0], _format(f), f.content)
        for n, f in enumerate(extra)
    ]
    return FakeMessage(
        message_id=message.message_id,
        subject=message.title,
        sender=message.sender.name or "",
        sender_id=message.sender.id or "",
        received=message.sent_at or datetime.now(timezone.utc),
        format=fmt,
        body=body,
        attachments=attachments,
        public=message.post_type == "MYNDIGHEDSPOST",
    )


def _message_attrs(message: FakeMessage, folder_id: str) -> str:
    attrs = {
        "id": message.message_id,
        "name": message.subject,
        # Danish wall-clock time without an offset [U]; the connector reads undated times that way.
        "receivedDateTime": message.received.astimezone(_COPENHAGEN).strftime("%Y-%m-%dT%H:%M:%S"),
        "unread": "true" if message.unread else "false",
        "format": message.format,
        "folderId": folder_id,
        "attachmentsCount": str(len(message.attachments)),
        "size": str(len(message.body)),
        "lastAction": "",
    }
    return " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())


def session_xml(user_id: str, name: str) -> str:
    return f'<Session xmlns="{NS}"><User userId={quoteattr(user_id)} name={quoteattr(name)}/></Session>'


def shares_xml(shares: list[FakeShare]) -> str:
    items = "".join(f"<Share name={quoteattr(s.name)} userId={quoteattr(s.share_id)}/>" for s in shares)
    return f'<Shares xmlns="{NS}">{items}</Shares>'


def _folder_xml(folder: FakeFolder) -> str:
    unread = sum(1 for m in folder.messages if m.unread)
    inner = "".join(_folder_xml(child) for child in folder.children)
    return (f"<FolderInfo id={quoteattr(folder.folder_id)} name={quoteattr(folder.name)} "
            f'unread="{unread}">{inner}</FolderInfo>')


def folders_xml(share: FakeShare) -> str:
    return f'<Folders xmlns="{NS}">{"".join(_folder_xml(f) for f in share.folders)}</Folders>'


def messages_xml(folder: FakeFolder, page: list[FakeMessage]) -> str:
    items = "".join(
        f"<MessageInfo {_message_attrs(m, folder.folder_id)}>{_sender_xml(m)}</MessageInfo>"
        for m in page
    )
    return (f'<FolderInfo xmlns="{NS}" id={quoteattr(folder.folder_id)} name={quoteattr(folder.name)}>'
            f"<Messages>{items}</Messages></FolderInfo>")


def message_xml(folder: FakeFolder, message: FakeMessage) -> str:
    atts = "".join(
        f"<AttachmentInfo id={quoteattr(a.attachment_id)} name={quoteattr(a.name)} "
        f"format={quoteattr(a.format)} size=\"{len(a.content)}\"/>"
        for a in message.attachments
    )
    return (f'<Message xmlns="{NS}" {_message_attrs(message, folder.folder_id)}>'
            f"{_sender_xml(message)}<Attachements>{atts}</Attachements></Message>")


def _sender_xml(message: FakeMessage) -> str:
    """`<Sender id="...">name</Sender>`: a Sender with attributes as well as text (Net-Eboks reads both)."""
    ident = f" id={quoteattr(message.sender_id)}" if message.sender_id else ""
    return f"<Sender{ident}>{escape(message.sender)}</Sender>"


def error_xml(code: str, text: str) -> str:
    return (f'<Error xmlns="{NS}"><ErrorCode>{escape(code)}</ErrorCode>'
            f"<ErrorText>{escape(text)}</ErrorText></Error>")
