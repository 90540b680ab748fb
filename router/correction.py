"""Correction: a person re-routes a letter the model, a rule or the default route sent wrong.

The letter is delivered to the right recipients (what was already delivered stays delivered; what
still waited for the wrong ones is held as history), the override is a decision by hand in the
trace naming what it overrules, and the letter becomes a training example with its right label.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from core.lifecycle import transition
from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, Message, MessageStatus, RoutingDecision, utcnow
from router.decision import Action, Decision
from router.stage import apply_decision

CORRECTABLE = (MessageStatus.ROUTED, MessageStatus.DELIVERING, MessageStatus.DELIVERED, MessageStatus.FAILED,
               MessageStatus.HELD)


class NotCorrectable(Exception):
    """The message does not exist, was never routed, or cannot be re-routed (e.g. quarantined)."""


@dataclass(frozen=True)
class Correction:
    message_id: str
    organisation: str
    overruled: str  # who decided the corrected placement: model, rule, default or hand
    previous: tuple[str, ...]
    recipients: tuple[str, ...]


def correct(store: Store, message_id: str, recipients: list[str], *, actor: str, directory: Any = None,
            channels: Collection[str] | None = None) -> Correction:
    """Re-route `message_id` to `recipients`, recording whose decision it overrules."""
    chosen = tuple(dict.fromkeys(recipients))
    if not chosen:
        raise NotCorrectable("name at least one recipient")
    with store.transaction() as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None:
            raise NotCorrectable(f"no message {message_id}")
        if message.status not in CORRECTABLE:
            raise NotCorrectable(f"message {message_id} is {message.status} and cannot be re-routed")
        previous = session.exec(
            select(RoutingDecision).where(RoutingDecision.message_id == message.id,
                                          RoutingDecision.action == Action.ROUTE.value)
            .order_by(col(RoutingDecision.id).desc())
        ).first()
        if previous is None:
            raise NotCorrectable(f"message {message_id} was never routed: place it with `queue assign`")
        overruled = {"decided_by": previous.decided_by, "recipients": list(previous.recipients),
                     "rule": previous.rule, "model": (previous.explanation or {}).get("model"),
                     "decision": previous.id}
        _hold_waiting_rows(session, message.id, chosen, reason=f"corrected by {actor}")
        by = previous.decided_by if previous.rule is None else f"rule {previous.rule!r}"
        decision = Decision(
            Action.ROUTE, decided_by="hand", recipients=chosen,
            reason=f"corrected by {actor}: {by} had sent it to {', '.join(previous.recipients) or 'nobody'}",
            explanation={"assigned_by": actor, "corrected": overruled},
        )
        apply_decision(session, message, decision, actor=actor, kind="corrected", directory=directory,
                       channels=channels)
        _settle_if_nothing_to_send(session, message, actor=actor)
        return Correction(message.id, message.organisation_cvr, previous.decided_by,
                          tuple(previous.recipients), chosen)


def _settle_if_nothing_to_send(session: Any, message: Message, *, actor: str) -> None:
    """The right recipients had it already (the wrong ones were extra): delivered, as it was."""
    waiting = session.exec(select(Delivery.id).where(
        Delivery.message_id == message.id,
        col(Delivery.status).in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
    )).first()
    if waiting is None:
        transition(session, message, MessageStatus.DELIVERING, kind="delivering", actor=actor)
        transition(session, message, MessageStatus.DELIVERED, kind="delivered", actor=actor,
                   reason="the corrected recipients had it already")


def _hold_waiting_rows(session: Any, message_id: str, keep: tuple[str, ...], *, reason: str) -> None:
    """Rows for the wrong recipients that have not gone out are held (history): a failed or pending
    row must neither be sent nor turn the corrected message into a dead letter."""
    rows = session.exec(select(Delivery).where(
        Delivery.message_id == message_id,
        col(Delivery.status).in_((DeliveryStatus.PENDING, DeliveryStatus.FAILED)),
    ).with_for_update())
    for row in rows:
        if row.recipient in keep:
            continue
        row.status, row.last_reply, row.lease_owner, row.lease_expires_at = DeliveryStatus.HELD, reason, None, None
        row.next_attempt_at = utcnow()
        session.add(row)
