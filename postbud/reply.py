"""Replies to Digital Post: a MeMo carrying ReplyData that points at the original, sent through NgDP."""

from __future__ import annotations

import mimetypes
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlmodel import select

from collector.state import MailboxState
from connectors.base import Capability, ConnectorContext, Replier
from connectors.registry import build, discover
from core import codec
from core.config import Config, MailboxConfig
from core.domain import Document, DocumentKind, File, MessageType, NormalizedMessage, Party, ReplyData
from core.lifecycle import gone_reason, record
from core.storage.db import Store
from core.storage.models import Attachment, Mailbox, Message, Organisation

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)


class ReplyRefused(Exception):
    """The original does not allow a reply, or no mailbox of the organisation can send one."""


@dataclass(frozen=True)
class SentReply:
    reply_uuid: str
    mailbox: str
    receipt: Mapping[str, Any]


def build_reply(original: NormalizedMessage, organisation: Party, answer: File, text: str | None) -> NormalizedMessage:
    files = [answer]
    if text:
        files.append(File("svar.txt", "text/plain", text.encode("utf-8"), language="da"))
    return NormalizedMessage(
        message_id=str(uuid.uuid4()),
        message_type=MessageType.DIGITALPOST,
        title=f"Svar: {original.title}"[:256],
        sender=organisation,
        recipient=Party(original.sender.id, original.sender.id_type, original.sender.name),
        format="memo-1.1",
        documents=(Document(DocumentKind.MAIN, tuple(files[:1]), label=answer.name),
                   *((Document(DocumentKind.ADDITIONAL, tuple(files[1:])),) if len(files) > 1 else ())),
        sent_at=datetime.now(timezone.utc),
        replies=(ReplyData(message_uuid=original.message_id, comment=(text or "")[:512] or None),),
        text=text or "",
    )


def _reply_mailbox(config: Config, cvr: str, preferred: str) -> MailboxConfig:
    org = config.organisation(cvr)
    registry = discover()
    capable = [m for m in org.mailboxes
               if m.type in registry and Capability.REPLY in registry[m.type].factory.capabilities]
    for mailbox in capable:
        if mailbox.name == preferred:
            return mailbox
    if not capable:
        raise ReplyRefused(f"organisation {cvr} has no mailbox that can send replies (e.g. type = \"ngdp\")")
    return capable[0]


async def send_reply(config: Config, store: Store, message_id: str, answer: Path, *, text: str | None,
                     actor: str) -> SentReply:
    with store.read() as session:
        row = session.get(Message, message_id)
        if row is None:
            raise ReplyRefused(f"no message {message_id}")
        if (gone := gone_reason(row)) is not None:
            raise ReplyRefused(gone)
        mailbox_row = session.get(Mailbox, row.mailbox_id)
        org_row = session.exec(select(Organisation).where(Organisation.cvr == row.organisation_cvr)).one()
        attachments = list(session.exec(select(Attachment).where(Attachment.message_id == row.id)))
    original = codec.unseal(store.vault, row, attachments)
    if not original.flags.reply_allowed:
        raise ReplyRefused("the sender does not allow replies to this message (MeMo reply is not true)")
    if not _UUID.match(original.message_id):
        raise ReplyRefused("the original has no MeMo messageUUID to reply to")
    media_type = mimetypes.guess_type(answer.name)[0] or "application/octet-stream"
    reply = build_reply(original, Party(org_row.cvr, "CVR", org_row.name),
                        File(answer.name, media_type, answer.read_bytes(), language="da"), text)
    mailbox = _reply_mailbox(config, row.organisation_cvr, mailbox_row.name if mailbox_row else "")
    with store.read() as session:
        target = session.exec(select(Mailbox).where(
            Mailbox.organisation_id == org_row.id, Mailbox.name == mailbox.name)).one()
    assert target.id is not None
    connector = build(mailbox, ConnectorContext(mailbox.name, row.organisation_cvr, config.base_dir,
                                                MailboxState(store, target.id)))
    try:
        if not isinstance(connector, Replier):  # a plug-in claiming REPLY without the contract
            raise ReplyRefused(f"connector {mailbox.type!r} claims replies but has no send_reply")
        receipt = await connector.send_reply(reply)
    finally:
        await connector.aclose()
    with store.transaction() as session:
        record(session, row.id, "replied", actor=actor, reason=f"reply sent through {mailbox.name}",
               detail={"reply_uuid": reply.message_id, "file": answer.name, "mailbox": mailbox.name})
    return SentReply(reply.message_id, mailbox.name, receipt)
