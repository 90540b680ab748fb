"""Track and trace as the console reads it: searches and letters confined to the viewer's organisations
(and, for a delivery account, to the letters delivered to or awaiting its own recipient id)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import defer
from sqlmodel import col, select

from core import codec
from core.lifecycle import gone_reason, record
from core.storage.db import Store
from core.storage.models import Attachment, Delivery, Mailbox, Message
from postbud import trace
from postbud.console.sessions import Viewer
from postbud.trace_actions import RAW_SUFFIX, safe_name


def search(store: Store, flt: trace.SearchFilter, organisations: tuple[str, ...]) -> trace.SearchPage:
    """`flt` within each of `organisations` (a chosen one only if it is among them), newest first."""
    chosen = (flt.organisation,) if flt.organisation else organisations
    chosen = tuple(o for o in chosen if o in organisations)
    rows: list[dict[str, Any]] = []
    truncated = False
    for org in chosen:
        page = trace.search_page(store, replace(flt, organisation=org))
        rows += page.rows
        truncated = truncated or page.truncated
    rows.sort(key=lambda r: (r["received_at"], r["id"]), reverse=True)
    limit = flt.limit or len(rows)
    return trace.SearchPage(rows[:limit], truncated or len(rows) > limit)


def mine(store: Store, viewer: Viewer, *, limit: int, before: datetime | None = None) -> list[dict[str, Any]]:
    """The letters whose outbox names the viewer's own recipient id exactly, newest first."""
    if not viewer.recipient:
        return []
    ids = select(Delivery.message_id).where(Delivery.recipient == viewer.recipient,
                                            col(Delivery.organisation_cvr).in_(viewer.organisations))
    query = (select(Message, Mailbox.name).join(Mailbox, col(Mailbox.id) == col(Message.mailbox_id))
             .where(col(Message.id).in_(ids), col(Message.organisation_cvr).in_(viewer.organisations))
             .options(defer(Message.content), defer(Message.raw))  # type: ignore[arg-type]
             .order_by(col(Message.received_at).desc(), col(Message.id)).limit(limit))
    if before:
        query = query.where(col(Message.received_at) < before)
    with store.read() as session:
        return [trace.message_summary(m, name) for m, name in session.exec(query)]


def letter(store: Store, message_id: str, viewer: Viewer, *, only_mine: bool) -> dict[str, Any] | None:
    """One letter as `trace show` has it, if the viewer may see it; None looks the same as not existing."""
    if len(message_id) != 32:
        return None  # whole ids only: a prefix would probe for other organisations' ids
    for org in viewer.organisations:
        found = trace.show(store, message_id, organisation=org)
        if found is not None:
            if only_mine and viewer.recipient not in {d["recipient"] for d in found["deliveries"]}:
                return None
            return found
    return None


def text_of(store: Store, message_id: str) -> str:
    with store.read() as session:
        message = session.get(Message, message_id)
        if message is None or message.content is None:
            return ""
        attachments = list(session.exec(select(Attachment).where(Attachment.message_id == message_id)))
    return codec.unseal(store.vault, message, attachments).text


def originals_zip(store: Store, message_id: str, *, actor: str) -> bytes | None:
    """The letter's attachments and raw original as one zip, and a `downloaded` event in its trace.

    None when nothing is left (purged, erased, quarantined without content)."""
    with store.read() as session:
        message = session.get(Message, message_id)
        if message is None or gone_reason(message) is not None:
            return None
        attachments = list(session.exec(
            select(Attachment).where(Attachment.message_id == message_id)
            .order_by(col(Attachment.document_index), col(Attachment.file_index))))
    buffer = io.BytesIO()
    count = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for a in attachments:
            content = store.vault.decrypt(a.content, codec.attachment_aad(a.id))
            archive.writestr(f"{a.document_index + 1}-{a.file_index + 1}-{safe_name(a.name, 'file')}", content)
            count += 1
        raw = codec.unseal_raw(store.vault, message)
        if raw is not None:
            archive.writestr(f"original{RAW_SUFFIX.get(message.raw_media_type or '', '.bin')}", raw)
            count += 1
    if count == 0:
        return None
    with store.transaction() as session:
        record(session, message_id, "downloaded", actor=actor, reason="decrypted originals downloaded in the console",
               detail={"files": count})
    return buffer.getvalue()
