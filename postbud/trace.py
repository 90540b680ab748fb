"""Track and trace: search stored messages and read one message's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select

from postbud.storage.db import Store
from postbud.storage.models import Mailbox, Message, RoutingDecision, TraceEvent


@dataclass(frozen=True)
class SearchFilter:
    organisation: str | None = None
    mailbox: str | None = None
    provider: str | None = None
    sender: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    limit: int = 100


def message_summary(message: Message, mailbox_name: str) -> dict[str, Any]:
    return {
        "id": message.id,
        "status": message.status,
        "status_reason": message.status_reason,
        "organisation": message.organisation_cvr,
        "mailbox": mailbox_name,
        "provider": message.provider,
        "provider_message_id": message.provider_message_id,
        "message_type": message.message_type,
        "title": message.title,
        "sender": message.sender_name,
        "sender_id": message.sender_id,
        "received_at": message.received_at.isoformat(),
        "sent_at": message.sent_at.isoformat() if message.sent_at else None,
        "acknowledged_at": message.acknowledged_at.isoformat() if message.acknowledged_at else None,
    }


def search(store: Store, flt: SearchFilter) -> list[dict[str, Any]]:
    """Messages matching every given filter, newest first."""
    query = select(Message, Mailbox.name).join(Mailbox, col(Mailbox.id) == col(Message.mailbox_id))
    if flt.organisation:
        query = query.where(Message.organisation_cvr == flt.organisation)
    if flt.mailbox:
        query = query.where(Mailbox.name == flt.mailbox)
    if flt.provider:
        query = query.where(Message.provider == flt.provider)
    if flt.status:
        query = query.where(Message.status == flt.status)
    if flt.sender:
        pattern = f"%{flt.sender.lower()}%"
        query = query.where(
            or_(func.lower(Message.sender_name).like(pattern), Message.sender_id == flt.sender)
        )
    if flt.since:
        query = query.where(col(Message.received_at) >= flt.since)
    if flt.until:
        query = query.where(col(Message.received_at) < flt.until)
    if flt.text:
        query = query.where(func.lower(Message.title).like(f"%{flt.text.lower()}%"))
    query = query.order_by(col(Message.received_at).desc()).limit(flt.limit)
    with store.read() as session:
        return [message_summary(m, name) for m, name in session.exec(query)]


def show(store: Store, message_id: str) -> dict[str, Any] | None:
    """One message with its timeline (oldest first) and routing decisions. A unique id prefix works too."""
    with store.read() as session:
        message = session.get(Message, message_id)
        if message is None and len(message_id) >= 6:
            matches = list(
                session.exec(select(Message).where(col(Message.id).startswith(message_id)).limit(2))
            )
            message = matches[0] if len(matches) == 1 else None
        if message is None:
            return None
        mailbox = session.get(Mailbox, message.mailbox_id)
        events = session.exec(
            select(TraceEvent)
            .where(TraceEvent.message_id == message.id)
            .order_by(col(TraceEvent.at), col(TraceEvent.id))
        ).all()
        decisions = session.exec(
            select(RoutingDecision)
            .where(RoutingDecision.message_id == message.id)
            .order_by(col(RoutingDecision.created_at))
        ).all()
        out = message_summary(message, mailbox.name if mailbox else "")
        out["events"] = [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "actor": e.actor,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "reason": e.reason,
                "detail": e.detail,
            }
            for e in events
        ]
        out["decisions"] = [
            {
                "at": d.created_at.isoformat(),
                "action": d.action,
                "decided_by": d.decided_by,
                "rule": d.rule,
                "recipients": d.recipients,
                "explanation": d.explanation,
            }
            for d in decisions
        ]
        return out


def count_by_status(store: Store) -> list[tuple[str, int]]:
    with store.read() as session:
        rows = session.exec(select(Message.status, func.count()).group_by(Message.status)).all()
    return [(status, int(n)) for status, n in rows]
