"""The message state machine. Every transition is written with its trace event in the caller's transaction.

    collected ─┬─> routed ──> delivering ─┬─> delivered
               ├─> held ───> routed        ├─> failed (dead letter) ──> delivering (resend)
               └─> quarantined             └─> held (recipient revoked: re-route)

    any state not yet delivered ──> expired (retention purged it)     any state ──> erased (on request)

Expired and erased letters are tombstones: nothing acts on them again (`gone_reason` says why).

A person's correction re-routes a routed, delivering or delivered message: → routed again.
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from core.logs import mask_cpr
from core.storage.models import Message, MessageStatus, TraceEvent, utcnow

S = MessageStatus

ALLOWED: dict[MessageStatus, frozenset[MessageStatus]] = {
    S.COLLECTED: frozenset({S.ROUTED, S.HELD, S.QUARANTINED}),
    S.HELD: frozenset({S.ROUTED, S.QUARANTINED}),
    S.ROUTED: frozenset({S.DELIVERING, S.HELD, S.ROUTED}),
    S.DELIVERING: frozenset({S.DELIVERED, S.FAILED, S.HELD, S.ROUTED}),
    S.FAILED: frozenset({S.DELIVERING, S.ROUTED, S.HELD}),
    S.DELIVERED: frozenset({S.DELIVERING, S.ROUTED}),
    S.QUARANTINED: frozenset(),
    S.EXPIRED: frozenset(),
    S.ERASED: frozenset(),
}


def gone_reason(message: Message) -> str | None:
    """One line saying why no command may act on this letter any more, or None when it may."""
    when = f" on {message.purged_at:%Y-%m-%d}" if message.purged_at is not None else ""
    if message.status == S.ERASED:
        return f"message {message.id} was erased on a data subject's request{when}; nothing is left of it"
    if message.status == S.EXPIRED or message.purged_at is not None:
        return f"message {message.id} was purged by retention{when}; its content is gone"
    return None


class IllegalTransition(Exception):
    def __init__(self, message_id: str, current: str, target: str, why: str | None = None) -> None:
        super().__init__(why or f"message {message_id}: {current} → {target} is not an allowed transition")


class EventFields(TypedDict, total=False):
    """A trace event's optional parts: why, the ids and names that say what happened, and the move."""

    reason: str | None
    detail: dict[str, Any] | None
    from_status: str | None
    to_status: str | None


def event_row(message_id: str | None, kind: str, *, actor: str, **fields: Unpack[EventFields]) -> dict[str, Any]:
    """A trace event's columns, for writing many at once (`insert_events`).

    CPR-like numbers in the reason and the detail's text are masked: a sender controls file names,
    titles and field values that reasons quote, and the trace is kept in clear for searching.
    """
    reason = fields.get("reason")
    return {
        "message_id": message_id,
        "at": utcnow(),
        "kind": kind,
        "actor": actor,
        "reason": mask_cpr(reason) if reason is not None else None,
        "detail": _masked(fields.get("detail") or {}),
        "from_status": fields.get("from_status"),
        "to_status": fields.get("to_status"),
    }


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write `event_row`s in the caller's transaction, in their order, as one statement."""
    if rows:
        session.execute(insert(TraceEvent), rows)


def record(session: Session, message_id: str | None, kind: str, *, actor: str,
           **fields: Unpack[EventFields]) -> TraceEvent:
    """Add a trace event to the session (committed with the caller's transaction); masked as `event_row`."""
    event = TraceEvent(**event_row(message_id, kind, actor=actor, **fields))
    session.add(event)
    return event


def transition(
    session: Session,
    message: Message,
    target: MessageStatus,
    *,
    kind: str,
    actor: str,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Move `message` to `target`, with the trace event saying who did it and why."""
    current = _allowed(message, target)
    message.status = target
    message.status_reason = mask_cpr(reason) if reason is not None else None
    message.updated_at = utcnow()
    session.add(message)
    record(
        session,
        message.id,
        kind,
        actor=actor,
        reason=reason,
        detail=detail,
        from_status=current,
        to_status=target,
    )


def move(session: Session, messages: list[Message], target: MessageStatus, *, kind: str, actor: str,
         reason: str | None = None, details: list[dict[str, Any]] | None = None) -> None:
    """`transition` for many messages at once: one UPDATE and one INSERT of their trace events, with
    the same checks. The rows were read in this transaction (and locked where it matters)."""
    if not messages:
        return
    events = []
    for n, message in enumerate(messages):
        current = _allowed(message, target)
        events.append(event_row(message.id, kind, actor=actor, reason=reason,
                                detail=details[n] if details else None, from_status=current, to_status=target))
    now = utcnow()
    session.connection().execute(
        update(Message).where(col(Message.id) == bindparam("row"))
        .values(status=target, status_reason=mask_cpr(reason) if reason is not None else None, updated_at=now),
        [{"row": m.id} for m in messages],
    )
    for message in messages:  # the caller's objects say what the database now says
        set_committed_value(message, "status", target)
    insert_events(session, events)


def _allowed(message: Message, target: MessageStatus) -> MessageStatus:
    """The message's status now, if it may move to `target`; else IllegalTransition says why not."""
    current = MessageStatus(message.status)
    gone = gone_reason(message)
    if gone is not None:
        raise IllegalTransition(message.id, current, target, gone)
    if target not in ALLOWED[current]:
        raise IllegalTransition(message.id, current, target)
    return current


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_cpr(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value
