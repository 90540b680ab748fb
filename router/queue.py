"""The manual queue: messages held for a person, their suggestions, and assignment by hand."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rapidfuzz import fuzz, process, utils
from sqlmodel import col, select

from core.lifecycle import gone_reason
from core.recipients import RecipientResolver
from core.storage.db import Store
from core.storage.models import Message, MessageStatus, RoutingDecision
from router.decision import Action, Decision
from router.stage import apply_decision
from rules.recipients import match_recipient

# A typed name picks a recipient on its own only when it is this sure and this far ahead of the next.
MIN_SCORE = 85.0
MIN_MARGIN = 10.0


@dataclass(frozen=True)
class HeldMessage:
    id: str
    organisation: str
    title: str
    sender: str | None
    received_at: datetime
    age_seconds: float
    reason: str | None
    suggestions: list[dict[str, Any]]
    model_reason: str | None = None  # why the model did not route it alone (e.g. cold start)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organisation": self.organisation,
            "title": self.title,
            "sender": self.sender,
            "received_at": self.received_at.isoformat(),
            "age_seconds": round(self.age_seconds),
            "reason": self.reason,
            "suggestions": self.suggestions,
            "model_reason": self.model_reason,
        }


def held(store: Store, *, organisation: str | None = None, now: datetime | None = None) -> list[HeldMessage]:
    """Held messages, oldest first, with the suggestions their last decision recorded."""
    now = now or datetime.now(timezone.utc)
    with store.read() as session:
        query = select(Message).where(Message.status == MessageStatus.HELD)
        if organisation:
            query = query.where(Message.organisation_cvr == organisation)
        messages = list(session.exec(query.order_by(col(Message.received_at))))
        out = []
        for m in messages:
            decision = session.exec(
                select(RoutingDecision)
                .where(RoutingDecision.message_id == m.id)
                .order_by(col(RoutingDecision.created_at).desc(), col(RoutingDecision.id).desc())
            ).first()
            explanation = decision.explanation if decision else {}
            out.append(HeldMessage(m.id, m.organisation_cvr, m.title, m.sender_name, m.received_at,
                                   (now - m.received_at).total_seconds(), m.status_reason,
                                   list(explanation.get("suggestions", [])), explanation.get("model_reason")))
    return out


@dataclass(frozen=True)
class Resolution:
    """A typed name resolved to one recipient id, or the candidates to choose from."""

    recipient: str | None
    candidates: tuple[tuple[str, str, float], ...] = ()  # (id, matched name, score)


def resolve_recipient(query: str, names: Mapping[str, Sequence[str]]) -> Resolution:
    """An id or a name, matched fuzzily against approved recipients; ambiguity is never guessed."""
    folded = query.casefold().strip()
    for rid, labels in names.items():
        if folded == rid.casefold() or any(folded == label.casefold() for label in labels):
            return Resolution(rid)
    best = match_recipient([query], names)
    if best and best.score >= MIN_SCORE and best.score - best.runner_up_score >= MIN_MARGIN:
        return Resolution(best.recipient)
    choices = [(rid, label) for rid, labels in names.items() for label in [rid, *labels]]
    ranked: dict[str, tuple[str, float]] = {}
    for _, score, index in process.extract(query, [c[1] for c in choices], scorer=fuzz.WRatio,
                                           processor=utils.default_process, limit=None):
        rid, label = choices[index]
        if score >= 50 and (rid not in ranked or score > ranked[rid][1]):
            ranked[rid] = (label, score)
    top = sorted(ranked.items(), key=lambda kv: kv[1][1], reverse=True)[:5]
    return Resolution(None, tuple((rid, label, round(score, 1)) for rid, (label, score) in top))


class NotHeld(Exception):
    pass


def assign(store: Store, message_id: str, recipients: list[str], *, actor: str,
           directory: RecipientResolver | None = None, channels: Collection[str] | None = None) -> Message:
    """A person places a held message: it is routed to `recipients` and becomes a training example.

    With `directory` each recipient gets their own channel among `channels`, as routing gives it.
    """
    with store.transaction() as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None:
            raise NotHeld(f"no message {message_id}")
        if (gone := gone_reason(message)) is not None:
            raise NotHeld(gone)
        if message.status != MessageStatus.HELD:
            raise NotHeld(f"message {message_id} is {message.status}, not held")
        decision = Decision(
            Action.ROUTE,
            decided_by="hand",
            recipients=tuple(dict.fromkeys(recipients)),
            reason=f"assigned by {actor}",
            explanation={"assigned_by": actor},
        )
        apply_decision(session, message, decision, actor=actor, kind="assigned", directory=directory,
                       channels=channels)
    return message
