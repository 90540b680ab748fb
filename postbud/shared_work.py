"""Whether other instances sharing the database still have work in hand (`run --once` helps them finish)."""

from __future__ import annotations

import datetime as dt

from sqlmodel import col, select

from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, Mailbox


def others_at_work(store: Store, me: str, now: dt.datetime) -> bool:
    """Another live instance holds a mailbox (collecting) or a letter it is sending.

    Only leases count: they run out, so an instance that died stops counting after its lease period,
    and a `run --once` waiting on this ends whatever happened to the others. (Letters left collected
    do not count: one that routing fails on every time would keep it waiting for ever.)
    """
    with store.read() as session:
        polling = select(Mailbox.id).where(col(Mailbox.lease_owner).is_not(None), col(Mailbox.lease_owner) != me,
                                           col(Mailbox.lease_expires_at) > now).limit(1)
        sending = select(Delivery.id).where(col(Delivery.status) == DeliveryStatus.SENDING,
                                            col(Delivery.lease_owner) != me,
                                            col(Delivery.lease_expires_at) > now).limit(1)
        return any(session.exec(query).first() is not None for query in (polling, sending))
