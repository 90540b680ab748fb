"""The manual queue as the console reads it: one page of held letters at a time, scoped to organisations."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.orm import defer
from sqlmodel import col, select

from core import codec
from core.recipients import RecipientResolver
from core.storage.db import Store
from core.storage.models import Attachment, Message, MessageStatus, RoutingDecision


@dataclass(frozen=True)
class HeldRow:
    id: str
    organisation: str
    title: str
    sender: str | None
    received_at: datetime
    reason: str | None


@dataclass(frozen=True)
class Letter:
    row: HeldRow
    text: str
    suggestions: list[dict[str, Any]]  # the model's top three: label, probability
    model_reason: str | None
    files: list[str]
    preview_png: bytes | None


def held_page(store: Store, organisations: tuple[str, ...], *, after: tuple[datetime, str] | None,
              limit: int) -> tuple[list[HeldRow], int]:
    """Held letters of `organisations`, oldest first, one page (those after `after`: received_at, id),
    and how many are held in all.

    The status/received_at index gives the order and the page's start (a seek, not an offset that
    reads every row before it); the sealed content columns are never read.
    """
    where = (col(Message.status) == MessageStatus.HELD, col(Message.organisation_cvr).in_(organisations))
    query = select(Message).where(*where)
    if after is not None:
        query = query.where(or_(col(Message.received_at) > after[0],
                                and_(col(Message.received_at) == after[0], col(Message.id) > after[1])))
    query = (query.options(defer(Message.content), defer(Message.raw))  # type: ignore[arg-type]
             .order_by(col(Message.received_at), col(Message.id)).limit(limit))
    with store.read() as session:
        rows = [_row(m) for m in session.exec(query)]
        total = int(session.exec(select(func.count()).select_from(Message).where(*where)).one())
    return rows, total


def _row(m: Message) -> HeldRow:
    return HeldRow(m.id, m.organisation_cvr, m.title, m.sender_name, m.received_at, m.status_reason)


def next_held(store: Store, organisations: tuple[str, ...], *, after: str | None = None) -> str | None:
    """The oldest held letter other than `after`: where the next placement starts."""
    query = select(Message.id).where(col(Message.status) == MessageStatus.HELD,
                                      col(Message.organisation_cvr).in_(organisations))
    if after:
        query = query.where(col(Message.id) != after)
    with store.read() as session:
        return session.exec(query.order_by(col(Message.received_at), col(Message.id)).limit(1)).first()


def letter(store: Store, message_id: str, organisations: tuple[str, ...]) -> Letter | None:
    """One held letter of `organisations` with its text, suggestions and documents; None otherwise."""
    with store.read() as session:
        message = session.get(Message, message_id)
        if (message is None or message.organisation_cvr not in organisations
                or message.status != MessageStatus.HELD):
            return None
        attachments = list(session.exec(select(Attachment).where(Attachment.message_id == message.id)
                                        .order_by(col(Attachment.document_index), col(Attachment.file_index))))
        decision = session.exec(
            select(RoutingDecision).where(RoutingDecision.message_id == message.id)
            .order_by(col(RoutingDecision.created_at).desc(), col(RoutingDecision.id).desc())).first()
    explanation = decision.explanation if decision else {}
    normalized = codec.unseal(store.vault, message, attachments) if message.content is not None else None
    pdf = next((f.content for d in normalized.documents for f in d.files
                if f.media_type == "application/pdf"), None) if normalized else None
    return Letter(_row(message), normalized.text if normalized else "",
                  list(explanation.get("suggestions", []))[:3], explanation.get("model_reason"),
                  [a.name for a in attachments], render_first_page(pdf) if pdf else None)


def render_first_page(pdf: bytes) -> bytes | None:
    """The PDF's first page as a small PNG via poppler's pdftoppm when installed; None otherwise."""
    tool = shutil.which("pdftoppm")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "letter.pdf"
        source.write_bytes(pdf)
        try:
            subprocess.run([tool, "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(source),
                            str(Path(folder) / "page")], check=True, timeout=10, capture_output=True)
        except (subprocess.SubprocessError, OSError):
            return None  # a broken PDF has no preview; its text is still shown
        page = Path(folder) / "page.png"
        return page.read_bytes() if page.exists() else None


def choices(directory: RecipientResolver | None, organisation: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The organisation's approved recipients (id, name) and group ids, for the dropdown."""
    if directory is None:
        return [], []
    names = directory.names(organisation)
    people = sorted(((rid, labels[0] if labels else rid) for rid, labels in names.items()), key=lambda p: p[1])
    return people, sorted(directory.groups(organisation))
