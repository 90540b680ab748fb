"""Outbox row transitions: claim under a lease, start the send, then settle as delivered, retry, fail,
release or hold.

Every function is one transaction (or runs in the caller's), records its trace event with the
change, and takes the message's row lock first (see `lock_message`). A row is only changed by the
worker that still holds its lease (`owner`); a worker whose lease ran out changes nothing.

Starting a send and recording an accepted one are committed in groups (delivery/group_commit.py).
An attempt is charged when the send to the relay starts (a group_commit.Start), not when a row is claimed,
so a crash before a row's turn costs it nothing. `send_started_at` stays set while a send's outcome
is unknown: a row claimed with it set may already be in the recipient's mailbox (`Job.in_doubt`). Such
a row is re-sent with the same Message-ID and never dead-lettered: if the re-send cannot be completed
(attempts used up, or the relay refuses it for good, as one that drops duplicates may) it is settled
as delivered, and the trace says so.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (BindParameter, Boolean, ColumnElement, CursorResult, and_, bindparam, case, func, null, or_,
                        text, update)
from sqlmodel import Session, col, select

from core.config import DeliverySettings
from core.lifecycle import ALLOWED, CURRENT, Current, insert_events, record, transition, update_status
from core.storage.db import Store
from core.storage.models import Delivery, DeliveryStatus, Message, MessageStatus, utcnow

ACTOR = "delivery"
RESEND_REASON = ("an earlier send may have completed (the process stopped during it); "
                 "sent again with the same Message-ID")
D = DeliveryStatus


@dataclass(frozen=True)
class Job:
    """A claimed outbox row (attempts already counts this attempt)."""

    id: str
    message_id: str
    organisation: str
    recipient: str
    channel: str
    idempotency_key: str
    attempts: int
    # An earlier send of this row started and its outcome was never recorded (the process died).
    in_doubt: bool = False


def _due(now: Any) -> ColumnElement[bool]:
    # pending and due, or claimed by a worker whose lease ran out (it died mid-send)
    return or_(
        and_(col(Delivery.status) == D.PENDING, col(Delivery.next_attempt_at) <= now),
        and_(col(Delivery.status) == D.SENDING, col(Delivery.lease_expires_at) < now),
    )


# The statements of the frequent transitions, built once (Core, no ORM instances): building a
# statement anew cost more CPU than executing it. IN lists are expanding parameters ("ids").
_D, _M = Delivery.__table__.c, Message.__table__.c  # type: ignore[attr-defined]  # SQLModel declares no __table__
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_DUE = (select(_D.id).where(_due(bindparam("now"))).order_by(_D.next_attempt_at, _D.id)
        .limit(bindparam("limit")).with_for_update(skip_locked=True))
# SQLite reads the OR above as a scan of the whole table (its statistics find status unselective; an OR
# of two ranges is not split; ~2 ms a claim at 2,000 rows, growing): each half here seeks the index and
# stops at `limit`. UNION ALL cannot take FOR UPDATE on PostgreSQL, and SQLite needs none.
_HALF = ("SELECT * FROM (SELECT id, next_attempt_at FROM delivery INDEXED BY ix_delivery_status_next "
         "WHERE status = '{status}' AND {due} ORDER BY next_attempt_at, id LIMIT :limit)")
_DUE_SQLITE = text(
    f"SELECT id FROM ({_HALF.format(status=D.PENDING.value, due='next_attempt_at <= :now')} UNION ALL "
    f"{_HALF.format(status=D.SENDING.value, due='lease_expires_at < :now')}) ORDER BY next_attempt_at, id LIMIT :limit"
).bindparams(bindparam("now", type_=_D.next_attempt_at.type))
_LEASE = (update(Delivery.__table__).where(_D.id.in_(_IDS), _due(bindparam("now")))  # type: ignore[attr-defined]
          .values(status=D.SENDING, lease_owner=bindparam("owner"), lease_expires_at=bindparam("until"))
          .returning(_D.id, _D.message_id, _D.organisation_cvr, _D.recipient, _D.channel, _D.idempotency_key,
                     _D.attempts, _D.send_started_at))
_LOCK = CURRENT.where(_M.id.in_(_IDS)).order_by(_M.id).with_for_update()
_ROUTED = CURRENT.where(_M.id.in_(_IDS), _M.status == MessageStatus.ROUTED).order_by(_M.id).with_for_update()
_GIVE_BACK = (update(Delivery.__table__)  # type: ignore[attr-defined]
              .where(_D.id == bindparam("row"), _D.lease_owner == bindparam("owner"), _D.status == D.SENDING)
              .values(status=D.PENDING, attempts=bindparam("claimed"), next_attempt_at=bindparam("at"),
                      lease_owner=None, lease_expires_at=None,
                      send_started_at=case((bindparam("doubt", type_=Boolean), _D.send_started_at), else_=null())))
_COUNTS = (select(_D.message_id, _D.status, func.count()).where(_D.message_id.in_(_IDS))
           .group_by(_D.message_id, _D.status))


def claim(store: Store, owner: str, *, now: dt.datetime, ttl: dt.timedelta, limit: int) -> list[Job]:
    """Lease up to `limit` due rows (SKIP LOCKED + conditional UPDATE, as collector/leases.py) and
    move their messages from routed to delivering."""
    with store.transaction() as session:
        connection = session.connection()
        due = _DUE_SQLITE if store.is_sqlite else _DUE
        ids = connection.execute(due, {"now": now, "limit": limit}).scalars().all()
        if not ids:
            return []
        order = {row_id: n for n, row_id in enumerate(ids)}  # the order they fell due in
        rows = sorted(connection.execute(_LEASE, {"ids": ids, "now": now, "owner": owner, "until": now + ttl}),
                      key=lambda row: order[row.id])
        jobs = [Job(r.id, r.message_id, r.organisation_cvr, r.recipient, r.channel, r.idempotency_key,
                    r.attempts, r.send_started_at is not None) for r in rows]
        starting = [Current(*row) for row in connection.execute(_ROUTED, {"ids": sorted({j.message_id for j in jobs})})]
        insert_events(session, update_status(
            session, starting, MessageStatus.DELIVERING, kind="delivering", actor=ACTOR,
            details=[{"recipients": sorted({j.recipient for j in jobs if j.message_id == message.id})}
                     for message in starting]))
    return jobs


def settle(session: Session, message_id: str) -> None:
    """Message delivered when every live row is; failed when none waits and one failed (settle_messages)."""
    settle_messages(session, {message_id})


def settle_messages(session: Session, message_ids: Collection[str]) -> None:
    """Each message delivered when every live row is; failed when none waits and one failed.

    Held rows do not count: holding a row moves its message to held, so a message that is
    delivering again was re-routed since, and its held rows are history.
    """
    insert_events(session, settled(session, lock_messages(session, message_ids)))


def settled(session: Session, messages: Sequence[Current]) -> list[dict[str, Any]]:
    """`settle_messages` for messages this transaction locked (`lock_messages`, after which they
    did not move): the trace events of those that settled are returned, for the caller to write in
    this same transaction (`insert_events`)."""
    delivering = [m for m in messages if m.status == MessageStatus.DELIVERING]
    if not delivering:
        return []
    counts: dict[str, dict[str, int]] = {m.id: {} for m in delivering}
    for message_id, status, n in session.connection().execute(_COUNTS, {"ids": list(counts)}):
        counts[message_id][status] = n
    delivered, failed = [], []
    for message in delivering:
        count = counts[message.id]
        if count.get(D.PENDING, 0) + count.get(D.SENDING, 0):
            continue
        if count.get(D.FAILED):
            failed.append(message)
        elif count.get(D.DELIVERED):
            delivered.append(message)
    return [*update_status(session, delivered, MessageStatus.DELIVERED, kind="delivered", actor=ACTOR,
                           details=[{"deliveries": counts[m.id][D.DELIVERED]} for m in delivered]),
            *update_status(session, failed, MessageStatus.FAILED, kind="failed", actor=ACTOR,
                           reason="dead letter: a delivery failed for good",
                           details=[{"failed": counts[m.id][D.FAILED]} for m in failed])]


def lock_messages(session: Session, message_ids: Collection[str]) -> list[Current]:
    """Take several messages' row locks, in id order (see lock_message); returns their `Current` columns."""
    session.flush()  # the caller's changes so far are what this transaction reads from here on
    return [Current(*row) for row in session.connection().execute(_LOCK, {"ids": sorted(message_ids)})]


def lock_message(session: Session, message_id: str) -> None:
    """Take the message's row lock first. Every finishing transaction inserts a trace event (a
    foreign-key share lock on the message) and may then settle the message (FOR UPDATE); two lanes
    finishing rows of one message in the other order deadlocked on PostgreSQL."""
    session.exec(select(Message.id).where(Message.id == message_id).with_for_update())


def _owned(job: Job, owner: str) -> ColumnElement[bool]:
    return and_(col(Delivery.id) == job.id, col(Delivery.lease_owner) == owner,
                col(Delivery.status) == D.SENDING)


def detail_of(job: Job, **extra: object) -> dict[str, object]:
    """A delivery trace event's detail: which row, recipient, channel and attempt."""
    return {"delivery": job.id, "recipient": job.recipient, "channel": job.channel, "attempt": job.attempts,
            **extra}


def _settle_delivered(store: Store, job: Job, *, owner: str, reply: str, event: str, reason: str,
                      detail: dict[str, Any]) -> bool:
    """Row delivered and its trace event, message settled, in one transaction; False when the lease
    ran out and another worker took the row over (nothing changed)."""
    with store.transaction() as session:
        lock_message(session, job.message_id)
        done = cast(CursorResult[Any], session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.DELIVERED, delivered_at=utcnow(), last_reply=reply[:500],
                    lease_owner=None, lease_expires_at=None, send_started_at=None)
        ))
        if not done.rowcount:
            return False
        record(session, job.message_id, event, actor=ACTOR, reason=reason[:500], detail=detail)
        settle(session, job.message_id)
    return True


def backoff(attempt: int, settings: DeliverySettings, rng: random.Random | None = None) -> float:
    """Exponential delay with equal jitter: half fixed, half random, capped."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def mark_retry(store: Store, job: Job, error: Exception, settings: DeliverySettings, *, owner: str,
               now: dt.datetime) -> str:
    """Transient failure: back off (state in next_attempt_at), or dead-letter after max attempts
    (a row in doubt is settled as delivered instead). Returns the outcome label."""
    if job.attempts >= settings.max_attempts:
        if job.in_doubt:
            settle_in_doubt(store, job, f"the re-send did not complete after {job.attempts} attempts: {error}",
                            owner=owner)
            return "delivered"
        mark_failed(store, job, f"gave up after {job.attempts} attempts: {error}", owner=owner)
        return "failed"
    delay = backoff(job.attempts, settings)
    with store.transaction() as session:
        lock_message(session, job.message_id)
        session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.PENDING, next_attempt_at=now + dt.timedelta(seconds=delay),
                    last_reply=str(error)[:500], lease_owner=None, lease_expires_at=None,
                    # the doubt about an earlier send stays; this attempt's failure is known
                    **({} if job.in_doubt else {"send_started_at": None}))
        )
        record(session, job.message_id, "delivery_retry", actor=ACTOR, reason=str(error)[:500],
               detail=detail_of(job, retry_in_seconds=round(delay, 1)))
    return "retry"


def settle_in_doubt(store: Store, job: Job, reason: str, *, owner: str) -> None:
    """A row whose earlier send may have completed is never dead-lettered: it counts as delivered,
    and the trace says that it is settled in doubt, and why."""
    _settle_delivered(store, job, owner=owner, reply=reason, event="delivery_settled_in_doubt",
                      reason=f"settled as delivered: an earlier send may have completed; {reason}",
                      detail=detail_of(job))


def mark_failed(store: Store, job: Job, reply: str, *, owner: str) -> None:
    """Dead letter: the row failed for good, with the reply in the trace; the message settles."""
    with store.transaction() as session:
        lock_message(session, job.message_id)
        session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.FAILED, last_reply=reply[:500], lease_owner=None, lease_expires_at=None,
                    send_started_at=None)
        )
        record(session, job.message_id, "delivery_failed", actor=ACTOR, reason=reply[:500],
               detail=detail_of(job, dead_letter=True))
        settle(session, job.message_id)


def hold(store: Store, job: Job, reason: str) -> None:
    """Hold the job's recipient (this row included) and send its messages back for re-routing."""
    with store.transaction() as session:
        lock_message(session, job.message_id)
        hold_recipient(session, job.organisation, job.recipient, reason=reason, actor=ACTOR, include=job.id)


def release(store: Store, job: Job, *, owner: str, at: dt.datetime) -> None:
    """Give a claimed row back unsent (its channel is paused, or the run stopped before its turn):
    no attempt was charged; a doubt about an earlier send stays."""
    with store.transaction() as session:
        session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.PENDING, next_attempt_at=at, lease_owner=None, lease_expires_at=None)
        )


def channel_paused(store: Store, job: Job, error: Exception, *, owner: str, at: dt.datetime) -> None:
    """The channel failed this send before anything reached the relay (down, TLS, credentials): the
    letter is not at fault, so the attempt `start_send` charged is given back."""
    with store.transaction() as session:
        lock_message(session, job.message_id)
        session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.PENDING, attempts=col(Delivery.attempts) - 1, next_attempt_at=at,
                    last_reply=str(error)[:500], lease_owner=None, lease_expires_at=None,
                    **({} if job.in_doubt else {"send_started_at": None}))
        )
        record(session, job.message_id, "delivery_channel_paused", actor=ACTOR, reason=str(error)[:500],
               detail=detail_of(job, attempt=job.attempts - 1, retry_at=at.isoformat()))


def recover_own(store: Store, owner: str, *, now: dt.datetime) -> int:
    """At start: rows this instance held when it died are its own, so take them up at once instead of
    after the lease period (their lease is ended; `send_started_at` says which may have been sent)."""
    with store.transaction() as session:
        done = cast(CursorResult[Any], session.execute(
            update(Delivery).where(col(Delivery.lease_owner) == owner, col(Delivery.status) == D.SENDING)
            .values(lease_expires_at=now - dt.timedelta(seconds=1))
        ))
        return int(done.rowcount or 0)


def release_all(store: Store, jobs: Sequence[Job], *, owner: str, at: dt.datetime) -> None:
    """Give back rows whose send never began (the run was cancelled, or their channel paused), in one
    transaction: any attempt charged for it is returned (each row's attempts as `jobs` were claimed),
    and a doubt about an earlier send stays."""
    if not jobs:
        return
    with store.transaction() as session:
        session.connection().execute(_GIVE_BACK, [
            {"row": job.id, "owner": owner, "claimed": job.attempts, "at": at, "doubt": job.in_doubt}
            for job in jobs])


def hold_recipient(session: Session, org: str, rid: str, *, reason: str, actor: str,
                   include: str | None = None) -> list[str]:
    """Hold the recipient's pending outbox rows (and `include`, a row being sent) and send their
    messages back to held for re-routing, in the caller's transaction. Returns the messages' ids."""
    waiting = [D.PENDING] + ([D.SENDING] if include else [])
    rows = list(session.exec(
        select(Delivery).where(Delivery.organisation_cvr == org, Delivery.recipient == rid,
                               col(Delivery.status).in_(waiting)).with_for_update()
    ))
    rows = [r for r in rows if r.status == D.PENDING or r.id == include]
    if not rows:
        return []
    session.execute(update(Delivery).where(col(Delivery.id).in_([r.id for r in rows]))
                    .values(status=D.HELD, last_reply=reason[:500], lease_owner=None,
                            lease_expires_at=None))
    message_ids = sorted({r.message_id for r in rows})
    messages = session.exec(select(Message).where(col(Message.id).in_(message_ids))
                            .order_by(col(Message.id)).with_for_update())
    for message in messages:
        channels = sorted({r.channel for r in rows if r.message_id == message.id})
        detail = {"recipient": rid, "channels": channels}
        if MessageStatus.HELD in ALLOWED[MessageStatus(message.status)]:
            transition(session, message, MessageStatus.HELD, kind="held", actor=actor, reason=reason,
                       detail=detail)
        else:
            record(session, message.id, "delivery_held", actor=actor, reason=reason, detail=detail)
    return message_ids
