"""Held letters are offered to the router again when a new model exists: what waited for the first
model (or for a better one) is routed without waiting for a person."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from core import codec
from core.logs import correlation_id
from core.storage.db import Store
from core.storage.models import Attachment, Mailbox, Message, MessageStatus, RoutingDecision
from router.decision import Action, Decider, Facts
from router.stage import apply_decision

log = logging.getLogger(__name__)

ACTOR = "router"


def held_by_the_router(store: Store, organisation: str) -> list[str]:
    """Held messages whose latest decision is the router's own hold (not a delivery hold)."""
    latest = (
        select(RoutingDecision.message_id, func.max(RoutingDecision.id).label("last"))
        .group_by(RoutingDecision.message_id)
        .subquery()
    )
    with store.read() as session:
        return list(session.exec(
            select(Message.id)
            .join(latest, col(latest.c.message_id) == col(Message.id))
            .join(RoutingDecision, col(RoutingDecision.id) == latest.c.last)
            .where(Message.organisation_cvr == organisation, Message.status == MessageStatus.HELD,
                   col(Message.content).is_not(None), RoutingDecision.action == Action.HOLD.value)
            .order_by(col(Message.received_at))
        ))


def reoffer_held(store: Store, decider: Decider, organisation: str, *, directory: Any = None,
                 channels: Collection[str] | None = None) -> int:
    """Decide each of the organisation's held letters again; route those the decider now routes.

    A letter still held stays as it is (no new trace noise). Returns how many were routed.
    """
    routed = 0
    for message_id in held_by_the_router(store, organisation):
        with store.transaction() as session:
            message = session.get(Message, message_id, with_for_update=True)
            if message is None or message.status != MessageStatus.HELD:
                continue  # a person placed it meanwhile
            correlation_id.set(message.id)
            mailbox = session.get(Mailbox, message.mailbox_id)
            attachments = list(session.exec(select(Attachment).where(Attachment.message_id == message.id)))
            # Content that cannot be read was quarantined at routing: held letters are readable.
            normalized = codec.unseal(store.vault, message, attachments)
            decision = decider.decide(Facts(message=normalized, organisation=message.organisation_cvr,
                                            mailbox=mailbox.name if mailbox else "", provider=message.provider,
                                            received_at=message.received_at))
            if decision.action is not Action.ROUTE:
                continue
            apply_decision(session, message, decision, actor=ACTOR, kind="reoffered", directory=directory,
                           channels=channels)
            routed += 1
    if routed:
        log.info("%d held messages of %s routed after a new model", routed, organisation)
    return routed
