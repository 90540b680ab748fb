"""Escalation: a message held longer than its organisation allows is brought to the administrators, once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import col, select

from core.config import Config
from core.lifecycle import record
from core.notify import Notifier
from core.storage.db import Store
from core.storage.models import Message, MessageStatus, TraceEvent


def escalate_held(store: Store, config: Config, notifier: Notifier, *, now: datetime | None = None) -> int:
    """Notify about every held message past its organisation's limit that was not escalated yet."""
    now = now or datetime.now(timezone.utc)
    escalated = 0
    for org in config.organisations:
        limit = now - timedelta(hours=org.escalate_held_after_hours)
        with store.read() as session:
            already = select(TraceEvent.message_id).where(TraceEvent.kind == "escalated")
            due = session.exec(
                select(Message.id, Message.title, Message.received_at)
                .where(
                    Message.organisation_cvr == org.cvr,
                    Message.status == MessageStatus.HELD,
                    col(Message.received_at) < limit,
                    col(Message.id).not_in(already),
                )
                .order_by(col(Message.received_at))
            ).all()
        if not due:
            continue
        with store.transaction() as session:
            for message_id, _, received_at in due:
                hours = (now - received_at).total_seconds() / 3600
                record(session, message_id, "escalated", actor="postbud",
                       reason=f"held for {hours:.0f} h (limit {org.escalate_held_after_hours:g} h)")
        notifier.notify(
            org.cvr,
            f"{len(due)} messages have waited in the manual queue for more than "
            f"{org.escalate_held_after_hours:g} hours",
            "Place them with `postbud queue list --org " + org.cvr + "` and `postbud queue assign`.",
        )
        escalated += len(due)
    return escalated
