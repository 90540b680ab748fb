"""The route stage: takes collected messages in groups and records their decisions in one transaction per group."""

from __future__ import annotations

import logging
from collections.abc import Collection

from typing import Any, cast

from sqlalchemy.orm import QueryableAttribute, defer
from sqlmodel import Session, col, select

from core import codec
from core.lifecycle import transition
from core.logs import correlation_id
from core.metrics import Metrics
from core.recipients import RecipientResolver
from core.storage.db import Store
from core.storage.models import (
    Delivery,
    DeliveryStatus,
    Mailbox,
    Message,
    MessageStatus,
    RoutingDecision,
    utcnow,
)
from router.decision import Action, Decider, Decision, Facts

log = logging.getLogger(__name__)

ACTOR = "router"
DEFAULT_CHANNEL = "email"


def route_next(store: Store, decider: Decider, metrics: Metrics, *, directory: RecipientResolver | None = None,
               channels: Collection[str] | None = None) -> bool:
    """Route the oldest collected message; False when there is none left (see apply_decision for
    `directory` and `channels`)."""
    return route_batch(store, decider, metrics, directory=directory, channels=channels, limit=1) > 0


def route_batch(store: Store, decider: Decider, metrics: Metrics, *, directory: RecipientResolver | None = None,
                channels: Collection[str] | None = None, limit: int = 50) -> int:
    """Route up to `limit` of the oldest collected messages in one transaction; how many were taken.

    Each message's decision, outbox rows and status change (with its trace event) are written as
    for one message; the group commits together, so delivery sees every one of them or none, and a
    crash before the commit leaves them all collected. SKIP LOCKED gives instances sharing a
    PostgreSQL database different groups.
    """
    outcomes: list[tuple[str, Decision | None, str]] = []
    with store.transaction() as session:
        messages = session.exec(
            select(Message).options(defer(cast(QueryableAttribute[Any], Message.raw)))  # the original: unused
            .where(Message.status == MessageStatus.COLLECTED)
            .order_by(col(Message.received_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not messages:
            return 0
        mailboxes = {m.id: m.name for m in session.exec(
            select(Mailbox).where(col(Mailbox.id).in_({m.mailbox_id for m in messages})))}
        # One query for the group's outbox rows (a collected letter has none unless it was routed and sent
        # back): a query per letter would also flush the session before each.
        existing: dict[str, list[Delivery]] = {m.id: [] for m in messages}
        for row in session.exec(select(Delivery).where(col(Delivery.message_id).in_(existing))):
            existing[row.message_id].append(row)
        for message in messages:
            correlation_id.set(message.id)
            decision = _route_one(session, store, decider, metrics, message, mailboxes.get(message.mailbox_id, ""),
                                  directory=directory, channels=channels, existing=existing[message.id])
            outcomes.append((message.id, decision, message.provider))
    for message_id, decision, provider in outcomes:
        if decision is None:
            metrics.messages_quarantined.labels(provider, "route").inc()
            continue
        metrics.routing_decisions.labels(decision.decided_by, decision.action.value).inc()
        log.info("message %s id=%s by=%s", decision.action.value, message_id, decision.decided_by)
    return len(outcomes)


def _route_one(session: Session, store: Store, decider: Decider, metrics: Metrics, message: Message,
               mailbox: str, *, directory: RecipientResolver | None,
               channels: Collection[str] | None, existing: list[Delivery]) -> Decision | None:
    """Decide and record one message in the group's transaction; None when it was quarantined."""
    try:
        # The sealed content only (with the extracted text and each file's name and media type): rules
        # and the model never read a file's bytes, so they are neither read nor decrypted here;
        # delivery decrypts the files it sends.
        normalized = codec.unseal(store.vault, message, [])
    except Exception as exc:  # undecryptable content is bad input for this message only
        transition(session, message, MessageStatus.QUARANTINED, kind="quarantined", actor=ACTOR,
                   reason=f"content cannot be read: {type(exc).__name__}")
        return None
    facts = Facts(
        message=normalized,
        organisation=message.organisation_cvr,
        mailbox=mailbox,
        provider=message.provider,
        received_at=message.received_at,
    )
    decision = decider.decide(facts)
    apply_decision(session, message, decision, actor=ACTOR, directory=directory, channels=channels,
                   existing=existing)
    return decision


def _targets(message: Message, recipients: tuple[str, ...], directory: RecipientResolver | None,
             channels: Collection[str] | None) -> list[tuple[str, str]]:
    """(recipient, channel) per outbox row: groups expanded and each recipient's channel chosen when a
    recipients file is given; ids it does not know stay as named (delivery holds them)."""
    if directory is None:
        return [(r, DEFAULT_CHANNEL) for r in recipients]
    enabled = list(channels) if channels is not None else ["email", "webhook", "post"]
    org = message.organisation_cvr
    out: dict[tuple[str, str], None] = {}
    for named in recipients:
        try:
            members = directory.members(org, named)
        except KeyError:
            out[(named, DEFAULT_CHANNEL)] = None
            continue
        for rid in members:
            out[(rid, str(directory.channel(org, rid, enabled=enabled)))] = None
    return list(out)


def apply_decision(session: Session, message: Message, decision: Decision, *, actor: str,
                   kind: str = "routed", directory: RecipientResolver | None = None,
                   channels: Collection[str] | None = None, existing: list[Delivery] | None = None) -> None:
    """Write the decision, its outbox rows and the status change, all in the caller's transaction.

    With `directory` groups are expanded and each recipient gets its preferred channel among
    `channels` (default: all), else the organisation's. `existing`: the message's outbox rows when the
    caller read them already (else they are read here).
    """
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
        # A held message re-routed to a recipient it already had (e.g. approved again) reuses the row.
        if existing is None:
            existing = list(session.exec(select(Delivery).where(Delivery.message_id == message.id)))
        rows = {(d.recipient, d.channel): d for d in existing}
        for recipient, channel in _targets(message, tuple(decision.recipients), directory, channels):
            row = rows.get((recipient, channel))
            if row is None:
                session.add(
                    Delivery(
                        message_id=message.id,
                        organisation_cvr=message.organisation_cvr,
                        recipient=recipient,
                        channel=channel,
                        idempotency_key=f"{message.id}:{recipient}:{channel}",
                    )
                )
            elif row.status in (DeliveryStatus.HELD, DeliveryStatus.FAILED):
                row.status, row.attempts, row.next_attempt_at = DeliveryStatus.PENDING, 0, utcnow()
                row.lease_owner = row.lease_expires_at = None
                session.add(row)
        transition(session, message, MessageStatus.ROUTED, kind=kind, actor=actor,
                   reason=decision.reason, detail=detail)
    else:
        transition(session, message, MessageStatus.HELD, kind="held", actor=actor,
                   reason=decision.reason or "held for manual placement", detail=detail)

