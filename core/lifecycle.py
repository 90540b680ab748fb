"""The message state machine. Every transition is written with its trace event in the caller's transaction.

    collected ─┬─> routed ──> delivering ─┬─> delivered
               ├─> held ───> routed        ├─> failed (dead letter) ──> delivering (resend)
               └─> quarantined             └─> held (recipient revoked: re-route)

    any state not yet delivered ──> expired (retention purged it)     any state ──> erased (on request)

Expired and erased letters are tombstones: nothing acts on them again (`gone_reason` says why).

A person's correction re-routes a routed, delivering or delivered message: → routed again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypedDict, Unpack

from sqlalchemy import JSON, Dialect, bindparam, select, update
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

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


class Stated(Protocol):
    """What the state machine checks of a message: a `Message`, or its `Current` columns alone."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def purged_at(self) -> datetime | None: ...


class Current(NamedTuple):
    """A message's id, status and purge time, read without the rest of its row (`CURRENT`)."""

    id: str
    status: str
    purged_at: datetime | None


_M = Message.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
# Built once: the SELECT of `Current` rows (add the WHERE), and the UPDATE of `update_status`.
CURRENT = select(_M.id, _M.status, _M.purged_at)
_UPDATE_STATUS = (update(Message.__table__).where(_M.id.in_(bindparam("ids", expanding=True)))  # type: ignore[attr-defined]
                  .values(status=bindparam("to_status"), status_reason=bindparam("why"), updated_at=bindparam("at")))
# The same with `routed_by`, which routing writes beside the status: the routing_decision trigger that
# derives it then finds the row already right and does not rewrite the message a second time.
_UPDATE_STATUS_ROUTED_BY = _UPDATE_STATUS.values(routed_by=bindparam("routed_by"))


class EncodedJSON(TypeDecorator[str]):
    """A JSON column's value encoded already (`event_row`'s detail, a routing decision's explanation):
    bound as it is."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


_INSERT_EVENTS = TraceEvent.__table__.insert().values(  # type: ignore[attr-defined]
    detail=bindparam("detail", type_=EncodedJSON()))
# The detail's JSON with each ASCII digit as 0: a CPR-like number (`core.logs._CPR`, six digits, a
# dash or not, four more) in any of its strings stands there as one of these.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_CPR_SHAPES = (b"0000000000", b"000000-0000")


def gone_reason(message: Stated) -> str | None:
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


class EncodedDetail(dict[str, Any]):
    """An event's detail that comes with its JSON text (`json.dumps(detail)`, made from parts the caller
    encoded for another column as well), so `event_row` need not encode it again. Not to be changed."""

    __slots__ = ("text",)

    def __init__(self, detail: dict[str, Any], text: str) -> None:
        super().__init__(detail)
        self.text = text


class EventFields(TypedDict, total=False):
    """A trace event's optional parts: why, the ids and names that say what happened, and the move."""

    reason: str | None
    detail: dict[str, Any] | None
    from_status: str | None
    to_status: str | None


def event_row(message_id: str | None, kind: str, *, actor: str, **fields: Unpack[EventFields]) -> dict[str, Any]:
    """A trace event's columns, for writing many at once (`insert_events`); the detail as JSON text.

    CPR-like numbers in the reason and the detail's text are masked: a sender controls file names,
    titles and field values that reasons quote, and the trace is kept in clear for searching.
    """
    return _columns(message_id, kind, actor, fields, _encoded(fields.get("detail") or {}))


def _columns(message_id: str | None, kind: str, actor: str, fields: EventFields, detail: Any) -> dict[str, Any]:
    """A trace event's columns with `detail` as given (masked already), its reason masked."""
    reason = fields.get("reason")
    return {
        "message_id": message_id,
        "at": utcnow(),
        "kind": kind,
        "actor": actor,
        "reason": mask_cpr(reason) if reason is not None else None,
        "detail": detail,
        "from_status": fields.get("from_status"),
        "to_status": fields.get("to_status"),
    }


def _encoded(detail: dict[str, Any]) -> str:
    """`detail` as the JSON column writes it (ASCII), its strings' CPR-like numbers masked.

    Encoded once, and walked only when a number may be in it: a CPR number is ten digits in a row, or
    six, a dash and four. ASCII digits and dashes stand in the text as they are (so such a number in
    a string stands in the text too), and any other script's digits are escaped as characters beyond
    U+00FF (`\\u` not followed by `00`), so text with neither holds none. (A CVR number, eight digits,
    is in most routing explanations: it is no reason to walk them.)
    """
    text = detail.text if isinstance(detail, EncodedDetail) else json.dumps(detail)
    shapes = text.encode().translate(_DIGITS_AS_ZERO)
    if all(shape not in shapes for shape in _CPR_SHAPES) and text.count("\\u") == text.count("\\u00"):
        return text
    return json.dumps(_masked(detail))


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write `event_row`s in the caller's transaction, in their order, as one statement."""
    if rows:
        session.flush()  # what the session holds goes first, as the ORM insert's autoflush did
        session.connection().execute(_INSERT_EVENTS, rows)


def record(session: Session, message_id: str | None, kind: str, *, actor: str,
           **fields: Unpack[EventFields]) -> TraceEvent:
    """Add a trace event to the session (committed with the caller's transaction); masked as `event_row`."""
    # the detail as a dict, masked: the ORM encodes it (not encoded by `event_row` and decoded again)
    event = TraceEvent(**_columns(message_id, kind, actor, fields, _masked(fields.get("detail") or {})))
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
    insert_events(session, update_status(session, messages, target, kind=kind, actor=actor, reason=reason,
                                         details=details))
    for message in messages:  # the caller's objects say what the database now says
        set_committed_value(message, "status", target)


def update_status(session: Session, messages: Sequence[Stated], target: MessageStatus, *, kind: str, actor: str,
                  reason: str | None = None, details: Sequence[dict[str, Any]] | None = None,
                  routed_by: str | None = None) -> list[dict[str, Any]]:
    """`move` for messages read as `Current` rows (or `Message`s): their status changed by one UPDATE,
    with the same checks, and their trace events returned, which the caller writes in this same
    transaction (`insert_events`, together with its own in one statement). `routed_by`, when given,
    is written in the same UPDATE: what the decision the caller inserts next will make it."""
    if not messages:
        return []
    events = [event_row(message.id, kind, actor=actor, reason=reason, detail=details[n] if details else None,
                        from_status=_allowed(message, target), to_status=target)
              for n, message in enumerate(messages)]
    values = {"ids": [m.id for m in messages], "to_status": target, "at": utcnow(),
              "why": mask_cpr(reason) if reason is not None else None}
    if routed_by is None:
        session.connection().execute(_UPDATE_STATUS, values)
    else:
        session.connection().execute(_UPDATE_STATUS_ROUTED_BY, {**values, "routed_by": routed_by})
    return events


def _allowed(message: Stated, target: MessageStatus) -> MessageStatus:
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
