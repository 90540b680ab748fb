"""The route stage: takes collected messages one at a time and records each decision in one transaction."""

from __future__ import annotations

import logging

from sqlmodel import select

from postbud import codec
from postbud.lifecycle import record, transition
from postbud.logs import correlation_id
from postbud.metrics import Metrics
from postbud.storage.db import Store
from postbud.storage.models import (
    Attachment,
    Delivery,
    Mailbox,
    Message,
    MessageStatus,
    RoutingDecision,
)
from router.decision import Action, Decider, Decision, Facts

log = logging.getLogger(__name__)

ACTOR = "router"
DEFAULT_CHANNEL = "email"


def route_next(store: Store, decider: Decider, metrics: Metrics) -> bool:
    """Route the oldest collected message; False when there is none left."""
    with store.transaction() as session:
        message = session.exec(
            select(Message)
            .where(Message.status == MessageStatus.COLLECTED)
            .order_by(Message.received_at)  # type: ignore[arg-type]
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if message is None:
            return False
        correlation_id.set(message.id)
        mailbox = session.get(Mailbox, message.mailbox_id)
        attachments = list(session.exec(select(Attachment).where(Attachment.message_id == message.id)))
        try:
            normalized = codec.unseal(store.vault, message, attachments)
        except Exception as exc:  # undecryptable content is bad input for this message only
            transition(session, message, MessageStatus.QUARANTINED, kind="quarantined", actor=ACTOR,
                       reason=f"content cannot be read: {type(exc).__name__}")
            metrics.messages_quarantined.labels(message.provider, "route").inc()
            return True
        facts = Facts(
            message=normalized,
            organisation=message.organisation_cvr,
            mailbox=mailbox.name if mailbox else "",
            provider=message.provider,
            received_at=message.received_at,
        )
        decision = decider.decide(facts)
        apply_decision(session, message, decision, actor=ACTOR)
    metrics.routing_decisions.labels(decision.decided_by, decision.action.value).inc()
    log.info("message %s id=%s by=%s", decision.action.value, message.id, decision.decided_by)
    return True


def apply_decision(session, message: Message, decision: Decision, *, actor: str,  # type: ignore[no-untyped-def]
                   kind: str = "routed") -> None:
    """Write the decision, its outbox rows and the status change, all in the caller's transaction."""
    session.add(
        RoutingDecision(
            message_id=message.id,
            action=decision.action.value,
            decided_by=decision.decided_by,
            rule=decision.rule,
            recipients=list(decision.recipients),
            explanation=decision.explanation,
            actor=actor,
        )
    )
    detail = {
        "decided_by": decision.decided_by,
        "rule": decision.rule,
        "recipients": list(decision.recipients),
        "explanation": decision.explanation,
    }
    if decision.action is Action.ROUTE and decision.recipients:
        for recipient in decision.recipients:
            session.add(
                Delivery(
                    message_id=message.id,
                    organisation_cvr=message.organisation_cvr,
                    recipient=recipient,
                    channel=DEFAULT_CHANNEL,
                    idempotency_key=f"{message.id}:{recipient}:{DEFAULT_CHANNEL}",
                )
            )
        transition(session, message, MessageStatus.ROUTED, kind=kind, actor=actor,
                   reason=decision.reason, detail=detail)
    else:
        transition(session, message, MessageStatus.HELD, kind="held", actor=actor,
                   reason=decision.reason or "held for manual placement", detail=detail)


__all__ = ["record", "route_next"]
