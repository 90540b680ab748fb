"""Letters already placed (by a rule, the model, a person or the fallback), as the console's processing
pages read them: the newest first, scoped to organisations, for resending and correcting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy import select as select_columns  # sqlmodel's select takes at most four
from sqlmodel import Session, col, select

from core.storage.db import Store
from core.storage.models import Message, MessageStatus, RoutingDecision

# What a correction or a resend may start from: the letter is placed and not gone.
PLACED = (MessageStatus.ROUTED, MessageStatus.DELIVERING, MessageStatus.DELIVERED, MessageStatus.FAILED)
RESENDABLE = (MessageStatus.DELIVERED, MessageStatus.FAILED)


@dataclass(frozen=True)
class PlacedRow:
    id: str
    organisation: str
    title: str
    sender: str | None
    received_at: datetime
    status: str
    routed_by: str  # rule, model, hand or default: who made the latest placement
    recipients: tuple[str, ...]

    @property
    def resendable(self) -> bool:
        return self.status in RESENDABLE


_COLUMNS = (col(Message.id), col(Message.organisation_cvr), col(Message.title), col(Message.sender_name),
            col(Message.received_at), col(Message.status), col(Message.routed_by))


def placed_page(store: Store, organisations: tuple[str, ...], *, before: tuple[datetime, str] | None,
                limit: int) -> list[PlacedRow]:
    """One page of placed letters of `organisations`, newest first (those before `before`: received_at, id)."""
    query = select_columns(*_COLUMNS).where(col(Message.organisation_cvr).in_(organisations),
                                    col(Message.status).in_(PLACED), col(Message.routed_by).is_not(None))
    if before is not None:
        query = query.where(or_(col(Message.received_at) < before[0],
                                and_(col(Message.received_at) == before[0], col(Message.id) < before[1])))
    with store.read() as session:
        rows = session.execute(query.order_by(col(Message.received_at).desc(), col(Message.id).desc())
                            .limit(limit)).all()
        return _with_recipients(session, rows)


def placed_letter(store: Store, message_id: str, organisations: tuple[str, ...]) -> PlacedRow | None:
    """One placed letter of `organisations`; None when it is not theirs, not placed or gone."""
    with store.read() as session:
        rows = session.execute(select_columns(*_COLUMNS).where(
            col(Message.id) == message_id, col(Message.organisation_cvr).in_(organisations),
            col(Message.status).in_(PLACED), col(Message.routed_by).is_not(None))).all()
        found = _with_recipients(session, rows)
    return found[0] if found else None


def _with_recipients(session: Session, listed: Sequence[Any]) -> list[PlacedRow]:
    """The rows with the recipients of each letter's latest placement."""
    latest: dict[str, list[str]] = {}
    if listed:
        decisions = session.exec(select(RoutingDecision.message_id, RoutingDecision.recipients)
                                 .where(col(RoutingDecision.message_id).in_([r[0] for r in listed]),
                                        RoutingDecision.action == "route")
                                 .order_by(col(RoutingDecision.id))).all()
        for message_id, recipients in decisions:  # ordered by id: the last one wins
            latest[message_id] = list(recipients)
    return [PlacedRow(mid, org, title, sender, at, status, routed_by or "", tuple(latest.get(mid, ())))
            for mid, org, title, sender, at, status, routed_by in listed]
