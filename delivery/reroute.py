"""Letters waiting for a channel their organisation switched off go by its default channel instead.

Routing already sends new letters by the default (`RecipientsFile.channel`); this moves the outbox
rows that were waiting for the channel when it was switched off (`channels_off` in the recipients
file). Each such row is kept, as history, with the reason (status held: it is no longer sent), and the
same recipient gets a row on the channel they now go by, in the same transaction, with a
`delivery_rerouted` trace event. Rows already sent, and the trace of letters already posted, are not
touched. A recipient the default channel cannot reach (no e-mail address for e-mail, no webhook table)
is left to the worker, which holds their letter for a person with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from sqlmodel import Session, col, select

from core.lifecycle import record
from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, utcnow
from delivery.outbox import ACTOR, lock_message, settle
from delivery.recipients import Channel, Recipient, RecipientsFile, UnknownRecipient

log = logging.getLogger(__name__)
D = DeliveryStatus


def reroute_switched_off(store: Store, directory: RecipientsFile, enabled: Collection[str]) -> int:
    """Move waiting rows of every organisation's switched-off channels to the channel each recipient
    goes by now (among `enabled`); returns how many moved. Nothing to do costs no query."""
    moved = 0
    for org in directory.organisations():
        off = [c.value for c in directory.channels_off(org)]
        if not off:
            continue
        with store.read() as session:
            waiting = session.exec(select(Delivery.id).where(
                Delivery.organisation_cvr == org, col(Delivery.channel).in_(off),
                Delivery.status == D.PENDING).order_by(col(Delivery.next_attempt_at))).all()
        moved += sum(_move(store, directory, org, row_id, enabled) for row_id in waiting)
    return moved


def _move(store: Store, directory: RecipientsFile, org: str, row_id: str, enabled: Collection[str]) -> bool:
    with store.transaction() as session:
        found = session.get(Delivery, row_id)
        if found is None:
            return False
        lock_message(session, found.message_id)  # first, as every outbox transaction does
        row = session.exec(select(Delivery).where(Delivery.id == row_id, Delivery.status == D.PENDING)
                           .with_for_update()).first()
        if row is None:
            return False  # claimed by a worker meanwhile: it sees the channel is off
        try:
            recipient = directory.get(org, row.recipient)
            to = directory.channel(org, row.recipient, enabled=enabled)
        except UnknownRecipient:
            return False
        if to.value == row.channel or to.value not in enabled or not _reachable(recipient, to):
            return False
        was, doubt = row.channel, row.send_started_at is not None
        reason = f"channel {was} is switched off for organisation {org}; re-routed to {to.value}"
        row.status, row.last_reply = D.HELD, reason
        row.lease_owner = row.lease_expires_at = None
        session.add(row)
        _waiting_on(session, row, to.value)
        record(session, row.message_id, "delivery_rerouted", actor=ACTOR,
               reason=reason + ("; an earlier send by " + was + " may have completed" if doubt else ""),
               detail={"delivery": row.id, "recipient": row.recipient, "from_channel": was, "channel": to.value})
        settle(session, row.message_id)
    log.info("delivery %s re-routed from %s to %s: the channel is switched off", row_id, was, to.value)
    return True


def _waiting_on(session: Session, row: Delivery, channel: str) -> None:
    """The recipient's row on `channel`: a new one, or theirs from before made due again (one already
    waiting, sending or delivered stays as it is)."""
    existing = session.exec(select(Delivery).where(Delivery.message_id == row.message_id,
                                                   Delivery.recipient == row.recipient,
                                                   Delivery.channel == channel)).first()
    due = row.next_attempt_at  # it was waiting: as due on its new channel as on the old
    if existing is None:
        session.add(Delivery(message_id=row.message_id, organisation_cvr=row.organisation_cvr,
                             recipient=row.recipient, channel=channel,
                             idempotency_key=f"{row.message_id}:{row.recipient}:{channel}",
                             created_at=utcnow(), next_attempt_at=due))
    elif existing.status in (D.HELD, D.FAILED):
        existing.status, existing.attempts, existing.next_attempt_at = D.PENDING, 0, due
        existing.lease_owner = existing.lease_expires_at = None
        session.add(existing)


def _reachable(recipient: Recipient, channel: Channel) -> bool:
    if channel is Channel.EMAIL:
        return recipient.email is not None
    if channel is Channel.WEBHOOK:
        return recipient.webhook is not None
    return recipient.postal_address is not None
