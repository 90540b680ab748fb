"""Track-and-trace actions on one message: download its decrypted originals, and resend it.

Both leave a trace event: a download says how many files left the vault and who took them, a resend
re-queues the outbox (every row back to pending, or one new recipient) through the state machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, select

from core import codec
from postbud import trace
from core.lifecycle import ALLOWED, gone_reason, record, transition
from core.storage.db import Store
from core.storage.models import Attachment, Delivery, DeliveryStatus, Message, MessageStatus, new_id, utcnow
from core.untrusted import safe_filename

RAW_SUFFIX = {"message/rfc822": ".eml", "application/xml": ".xml", "text/xml": ".xml", "application/json": ".json"}


class TraceActionError(Exception):
    """The action cannot be done for this message; the text says why."""


class NotFound(TraceActionError):
    def __init__(self, message: str, candidates: tuple[tuple[str, str, str], ...] = ()) -> None:
        super().__init__(message)
        self.candidates = candidates  # (id, received_at, title) when the prefix was ambiguous


@dataclass(frozen=True)
class Download:
    message_id: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Resend:
    message_id: str
    requeued: tuple[str, ...]  # recipients whose outbox row is pending again
    added: str | None  # a new recipient (--to)


def find_message(session: Session, message_id: str) -> Message:
    """By id or unique prefix (at least 6 characters), as `trace show` does."""
    try:
        return trace.find_message(session, message_id)
    except trace.MessageNotFound as exc:
        raise NotFound(str(exc), exc.candidates) from None


def safe_name(name: str, fallback: str) -> str:
    """A file name that stays inside the target folder whatever the sender called the file."""
    return safe_filename(name, default=fallback)


def download(store: Store, message_id: str, folder: Path, *, actor: str) -> Download:
    """Write the message's attachments and raw original into `folder` (0600 files; never overwrites)."""
    with store.read() as session:
        message = find_message(session, message_id)
        attachments = list(session.exec(
            select(Attachment).where(Attachment.message_id == message.id)
            .order_by(col(Attachment.document_index), col(Attachment.file_index))
        ))
    if (gone := gone_reason(message)) is not None:
        raise TraceActionError(gone)
    files: list[tuple[str, bytes]] = []
    for a in attachments:
        content = store.vault.decrypt(a.content, codec.attachment_aad(a.id))
        files.append((f"{a.document_index + 1}-{a.file_index + 1}-{safe_name(a.name, 'file')}", content))
    raw = codec.unseal_raw(store.vault, message)
    if raw is not None:
        files.append((f"original{RAW_SUFFIX.get(message.raw_media_type or '', '.bin')}", raw))
    if not files:
        raise TraceActionError(f"message {message.id} has no stored documents")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    try:
        for name, content in files:
            path = folder / name
            # O_EXCL: an existing file is someone's; decrypted personal data is readable by us only.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            written.append(path)
    except FileExistsError as exc:
        raise TraceActionError(f"{exc.filename} exists already; choose an empty folder") from None
    with store.transaction() as session:
        record(session, message.id, "downloaded", actor=actor, reason="decrypted originals written out",
               detail={"files": len(written)})
    return Download(message.id, tuple(written))


def resend(store: Store, message_id: str, *, actor: str, to: str | None = None, channel: str | None = None) -> Resend:
    """Queue the message for delivery again: its outbox rows, or only a new row for `to`."""
    with store.transaction() as session:
        message = find_message(session, message_id)
        status = MessageStatus(message.status)
        if (gone := gone_reason(message)) is not None:
            raise TraceActionError(gone)
        if message.content is None:
            raise TraceActionError(f"message {message.id} has no content left to send (purged or quarantined)")
        if MessageStatus.DELIVERING not in ALLOWED[status]:
            raise TraceActionError(f"message {message.id} is {status}; only delivered or failed messages are resent")
        rows = list(session.exec(select(Delivery).where(Delivery.message_id == message.id)))
        now = utcnow()
        # A new key per resend: the receiving side must not discard it as a duplicate of the first.
        key = f"resend-{new_id()[:12]}"
        requeued: list[str] = []
        added = None
        if to is None:
            if not rows:
                raise TraceActionError(f"message {message.id} has no outbox rows; use --to RECIPIENT")
            targets = rows
        else:
            chosen = channel or (rows[0].channel if rows else "email")
            existing = [r for r in rows if r.recipient == to and r.channel == chosen]
            targets = existing
            if not existing:
                added = to
                session.add(Delivery(
                    message_id=message.id, organisation_cvr=message.organisation_cvr, recipient=to,
                    channel=chosen, idempotency_key=f"{message.id}:{to}:{chosen}:{key}",
                    created_at=now, next_attempt_at=now,
                ))
        for row in targets:
            row.status = DeliveryStatus.PENDING
            row.attempts = 0
            row.next_attempt_at = now
            row.delivered_at = None
            row.lease_owner = None
            row.lease_expires_at = None
            row.idempotency_key = f"{message.id}:{row.recipient}:{row.channel}:{key}"
            session.add(row)
            requeued.append(row.recipient)
        transition(session, message, MessageStatus.DELIVERING, kind="resent", actor=actor,
                   reason="resent on request",
                   detail={"recipients": requeued + ([added] if added else [])})
    return Resend(message.id, tuple(requeued), added)
