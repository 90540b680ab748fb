"""Track and trace: search stored messages and read one message's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import func, or_
from sqlalchemy.orm import QueryableAttribute, defer
from sqlmodel import Session, col, select

from core.storage.db import Store
from core.metrics import MailboxReading, Reading
from core.storage.models import Delivery, Mailbox, MailboxStatus, Message, Organisation, RoutingDecision, TraceEvent


MIN_PREFIX = 6  # shorter prefixes match too much to be meant as one message


class MessageNotFound(LookupError):
    """What was typed names no one message; `candidates` are the ids it is the start of (ambiguous)."""

    def __init__(self, typed: str, message: str, candidates: tuple[tuple[str, str, str], ...] = ()) -> None:
        super().__init__(message)
        self.typed = typed
        self.candidates = candidates  # (id, received_at, title)


@dataclass(frozen=True)
class SearchPage:
    rows: list[dict[str, Any]]
    truncated: bool  # more messages match than the limit let through


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
    limit: int | None = 100  # None: every match
    # Appended last so positional construction (the CLI's) keeps working.
    recipient: str | None = None
    channel: str | None = None


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
        "purged_at": message.purged_at.isoformat() if message.purged_at else None,
    }


def _contains(value: str) -> str:
    """A LIKE pattern for `value` anywhere, with the user's own % and _ taken literally."""
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(store: Store, flt: SearchFilter) -> list[dict[str, Any]]:
    """Messages matching every given filter, newest first, at most `flt.limit`."""
    return search_page(store, flt).rows


def search_page(store: Store, flt: SearchFilter) -> SearchPage:
    """Messages matching every given filter, newest first, and whether the limit cut some off.

    Two steps: the matching ids come from a covering index (`ix_message_org_search` within an
    organisation, else `ix_message_search`: every filtered column, in time order), so a scan never
    reads the rows with their large sealed columns; then only the page of rows is read.
    """
    ids = select(Message.id)
    if flt.organisation:
        ids = ids.where(Message.organisation_cvr == flt.organisation)
    if flt.mailbox:
        ids = ids.where(col(Message.mailbox_id).in_(select(Mailbox.id).where(Mailbox.name == flt.mailbox)))
    if flt.provider:
        ids = ids.where(Message.provider == flt.provider)
    if flt.status:
        ids = ids.where(Message.status == flt.status)
    if flt.sender:
        ids = ids.where(
            or_(
                func.lower(Message.sender_name).like(_contains(flt.sender), escape="\\"),
                col(Message.sender_id) == flt.sender,
            )
        )
    if flt.recipient:
        # The outbox holds who a message went to: an exact address, or a part of one.
        ids = ids.where(
            col(Message.id).in_(
                select(Delivery.message_id).where(
                    or_(
                        col(Delivery.recipient) == flt.recipient,
                        func.lower(Delivery.recipient).like(_contains(flt.recipient), escape="\\"),
                    )
                )
            )
        )
    if flt.channel:
        ids = ids.where(col(Message.id).in_(select(Delivery.message_id).where(Delivery.channel == flt.channel)))
    if flt.since:
        ids = ids.where(col(Message.received_at) >= flt.since)
    if flt.until:
        ids = ids.where(col(Message.received_at) < flt.until)
    if flt.text:
        pattern = _contains(flt.text)
        ids = ids.where(
            or_(
                func.lower(Message.title).like(pattern, escape="\\"),
                func.lower(Message.sender_name).like(pattern, escape="\\"),
            )
        )
    page = ids.order_by(col(Message.received_at).desc())
    if flt.limit is not None:
        page = page.limit(flt.limit + 1)  # one more than shown tells whether there are more
    query = (
        select(Message, Mailbox.name)
        .join(Mailbox, col(Mailbox.id) == col(Message.mailbox_id))
        .where(col(Message.id).in_(page.scalar_subquery()))
        # SQLModel types columns as their values; the attributes are QueryableAttributes at run time.
        .options(defer(cast(QueryableAttribute[Any], Message.content)),
                 defer(cast(QueryableAttribute[Any], Message.raw)))
        .order_by(col(Message.received_at).desc(), col(Message.id))
    )
    with store.read() as session:
        rows = [message_summary(m, name) for m, name in session.exec(query)]
    if flt.limit is not None and len(rows) > flt.limit:
        return SearchPage(rows[:flt.limit], True)
    return SearchPage(rows, False)


def find_message(session: Session, typed: str, *, organisation: str | None = None) -> Message:
    """The message with id `typed`, or the one whose id starts with it (at least MIN_PREFIX characters);
    raises MessageNotFound saying why not. With `organisation`, another organisation's is not found."""
    message = session.get(Message, typed)
    if message is not None and (organisation is None or message.organisation_cvr == organisation):
        return message
    if len(typed) < MIN_PREFIX:
        raise MessageNotFound(typed, f"no message {typed}; give the whole id or at least its first {MIN_PREFIX} "
                                     "characters (`postbud trace search` lists ids)")
    query = select(Message).where(col(Message.id).startswith(typed, autoescape=True))
    if organisation is not None:
        query = query.where(Message.organisation_cvr == organisation)
    matches = list(session.exec(query.order_by(col(Message.received_at).desc()).limit(10)))
    if not matches:
        raise MessageNotFound(typed, f"no message {typed} (`postbud trace search` lists ids)")
    if len(matches) > 1:
        count = f"{len(matches)}" if len(matches) < 10 else "10 or more"
        raise MessageNotFound(typed, f"{typed} is the start of {count} message ids; give more characters",
                              tuple((m.id, m.received_at.isoformat(), m.title) for m in matches))
    return matches[0]


def show(store: Store, message_id: str, *, organisation: str | None = None) -> dict[str, Any] | None:
    """One message with its timeline (oldest first), routing decisions and outbox rows; None when
    `message_id` names no one message (`show_message` says why)."""
    try:
        return show_message(store, message_id, organisation=organisation)
    except MessageNotFound:
        return None


def show_message(store: Store, message_id: str, *, organisation: str | None = None) -> dict[str, Any]:
    """As `show`; a unique id prefix works too. Raises MessageNotFound with the reason and candidates."""
    with store.read() as session:
        message = find_message(session, message_id, organisation=organisation)
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
        deliveries = session.exec(
            select(Delivery).where(Delivery.message_id == message.id).order_by(col(Delivery.created_at))
        ).all()
        out["deliveries"] = [
            {
                "recipient": d.recipient,
                "channel": d.channel,
                "status": d.status,
                "attempts": d.attempts,
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
                "last_reply": d.last_reply,
            }
            for d in deliveries
        ]
        return out


def count_by_status(store: Store) -> list[tuple[str, int]]:
    with store.read() as session:
        rows = session.exec(select(Message.status, func.count()).group_by(Message.status)).all()
    return [(status, int(n)) for status, n in rows]


def _pause_left(mailbox: Mailbox, now: datetime) -> float:
    if mailbox.status != MailboxStatus.PAUSED or mailbox.next_poll_at is None:
        return 0.0
    due = mailbox.next_poll_at if mailbox.next_poll_at.tzinfo else mailbox.next_poll_at.replace(tzinfo=timezone.utc)
    return max(0.0, (due - now).total_seconds())


def metrics_reading(store: Store) -> Reading:
    """The database side of /metrics: counts by status and each mailbox's freshness."""
    now = datetime.now(timezone.utc)
    with store.read() as session:
        oldest: dict[int | None, datetime] = dict(
            session.exec(
                select(Message.mailbox_id, func.min(Message.received_at))
                .where(col(Message.acknowledged_at).is_(None), Message.status != "quarantined")
                .group_by(col(Message.mailbox_id))
            ).all()
        )
        rows = session.exec(select(Mailbox, Organisation.cvr).join(Organisation)).all()
        oldest_held = session.exec(
            select(func.min(Message.received_at)).where(Message.status == "held")
        ).first()
    mailboxes = []
    for mailbox, cvr in rows:
        first = oldest.get(mailbox.id)
        if first is not None and first.tzinfo is None:
            first = first.replace(tzinfo=timezone.utc)
        mailboxes.append(
            MailboxReading(
                provider=mailbox.provider,
                mailbox=f"{cvr}/{mailbox.name}",
                status=mailbox.status,
                last_success=mailbox.last_success_at.timestamp() if mailbox.last_success_at else None,
                oldest_unacknowledged_age=(now - first).total_seconds() if first else None,
                pause=_pause_left(mailbox, now),
            )
        )
    held_age = (now - oldest_held).total_seconds() if oldest_held else 0.0
    return Reading(messages_by_status=count_by_status(store), mailboxes=mailboxes, oldest_held_age=held_age)
