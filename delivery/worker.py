"""The outbox worker: claims due outbox rows with a lease, sends each, records the outcome in one transaction.

A crash between the remote side's acceptance and the commit leaves the row `sending` under a lease;
when the lease expires another run sends it again with the same Message-ID (derived from the row's
idempotency key), so the receiver can drop the duplicate. Nothing is ever sent to a recipient who
is not approved or whose key does not check out today: their rows are held and their messages go
back to held for re-routing. Back-off state lives in the row (`next_attempt_at`), not in memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, update
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from delivery.approval import admission, hold_recipient
from delivery.channels import Channel, Outbound, Sent, build_channels, delivery_token
from delivery.errors import (
    DeliveryError,
    EncryptionError,
    PermanentDeliveryError,
    SmtpAuthFailed,
    TlsRequired,
    TransientDeliveryError,
)
from delivery.keys import (
    KeyStatus,
    check_pgp_key,
    check_recipient_key,
    check_smime_cert,
)
from delivery.recipients import KeyKind, Recipient, RecipientDirectory, UnknownRecipient
from core import codec
from core.config import Config, DeliverySettings
from core.domain import NormalizedMessage
from core.lifecycle import record, transition
from core.logs import correlation_id
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import (
    Attachment,
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    utcnow,
)

log = logging.getLogger(__name__)

ACTOR = "delivery"
D = DeliveryStatus
# status changes need the message row, not its sealed content
_LIGHT = (defer(Message.content), defer(Message.raw))  # type: ignore[arg-type]


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


def _due(now: dt.datetime):  # type: ignore[no-untyped-def]
    # pending and due, or claimed by a worker whose lease ran out (it died mid-send)
    return or_(
        and_(col(Delivery.status) == D.PENDING, col(Delivery.next_attempt_at) <= now),
        and_(col(Delivery.status) == D.SENDING, col(Delivery.lease_expires_at) < now),
    )


def claim(store: Store, owner: str, *, now: dt.datetime, ttl: dt.timedelta, limit: int) -> list[Job]:
    """Lease up to `limit` due rows (SKIP LOCKED + conditional UPDATE, as collector/leases.py) and
    move their messages from routed to delivering."""
    with store.transaction() as session:
        ids = session.exec(
            select(Delivery.id).where(_due(now))
            .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
            .limit(limit).with_for_update(skip_locked=True)
        ).all()
        if not ids:
            return []
        session.execute(
            update(Delivery).where(col(Delivery.id).in_(ids), _due(now))
            .values(status=D.SENDING, lease_owner=owner, lease_expires_at=now + ttl,
                    attempts=Delivery.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        rows = session.exec(
            select(Delivery).where(col(Delivery.id).in_(ids), Delivery.lease_owner == owner,
                                   Delivery.status == D.SENDING)
            .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        ).all()
        jobs = [Job(r.id, r.message_id, r.organisation_cvr, r.recipient, r.channel, r.idempotency_key,
                    r.attempts) for r in rows]
        starting = session.exec(
            select(Message).options(*_LIGHT).where(col(Message.id).in_({j.message_id for j in jobs}),
                                  Message.status == MessageStatus.ROUTED)
            .order_by(col(Message.id)).with_for_update()
        ).all()
        for message in starting:
            transition(session, message, MessageStatus.DELIVERING, kind="delivering", actor=ACTOR,
                       detail={"recipients": sorted({j.recipient for j in jobs
                                                     if j.message_id == message.id})})
    return jobs


def _settle(session: Session, message_id: str) -> None:
    """Message delivered when every live row is; failed when none waits and one failed.

    Held rows do not count: holding a row moves its message to held, so a message that is
    delivering again was re-routed since, and its held rows are history.
    """
    message = session.exec(select(Message).options(*_LIGHT).where(Message.id == message_id)
                           .with_for_update()).first()
    if message is None or message.status != MessageStatus.DELIVERING:
        return
    counts = dict(session.exec(select(Delivery.status, func.count()).where(Delivery.message_id == message_id)
                               .group_by(Delivery.status)).all())
    waiting = counts.get(D.PENDING, 0) + counts.get(D.SENDING, 0)
    if not waiting and not counts.get(D.FAILED) and counts.get(D.DELIVERED):
        transition(session, message, MessageStatus.DELIVERED, kind="delivered", actor=ACTOR,
                   detail={"deliveries": counts[D.DELIVERED]})
    elif not waiting and counts.get(D.FAILED):
        transition(session, message, MessageStatus.FAILED, kind="failed", actor=ACTOR,
                   reason="dead letter: a delivery failed for good", detail={"failed": counts[D.FAILED]})


def _lock_message(session: Session, message_id: str) -> None:
    """Take the message's row lock first. Every finishing transaction inserts a trace event (a
    foreign-key share lock on the message) and may then settle the message (FOR UPDATE); two lanes
    finishing rows of one message in the other order deadlocked on PostgreSQL."""
    session.exec(select(Message.id).where(Message.id == message_id).with_for_update())


def _owned(job: Job, owner: str):  # type: ignore[no-untyped-def]
    return and_(col(Delivery.id) == job.id, col(Delivery.lease_owner) == owner,
                col(Delivery.status) == D.SENDING)


def _detail(job: Job, **extra: object) -> dict[str, object]:
    return {"delivery": job.id, "recipient": job.recipient, "channel": job.channel, "attempt": job.attempts,
            **extra}


def _mark_delivered(store: Store, job: Job, sent: Sent, *, owner: str) -> bool:
    """The commit after a successful send: row delivered, trace with the reply, message settled."""
    with store.transaction() as session:
        _lock_message(session, job.message_id)
        done = session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.DELIVERED, delivered_at=utcnow(), last_reply=sent.reply[:500],
                    lease_owner=None, lease_expires_at=None)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            return False  # the lease ran out and another worker took the row over
        record(session, job.message_id, "delivery_sent", actor=ACTOR, reason=sent.reply[:500],
               detail=_detail(job, message_id=sent.message_id))
        _settle(session, job.message_id)
    return True


def backoff(attempt: int, settings: DeliverySettings, rng: random.Random | None = None) -> float:
    """Exponential delay with equal jitter: half fixed, half random, capped."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def _mark_retry(store: Store, job: Job, error: Exception, settings: DeliverySettings, *, owner: str,
                now: dt.datetime) -> str:
    """Transient failure: back off (state in next_attempt_at), or dead-letter after max attempts."""
    if job.attempts >= settings.max_attempts:
        _mark_failed(store, job, f"gave up after {job.attempts} attempts: {error}", owner=owner)
        return "failed"
    delay = backoff(job.attempts, settings)
    with store.transaction() as session:
        _lock_message(session, job.message_id)
        session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.PENDING, next_attempt_at=now + dt.timedelta(seconds=delay),
                    last_reply=str(error)[:500], lease_owner=None, lease_expires_at=None)
        )
        record(session, job.message_id, "delivery_retry", actor=ACTOR, reason=str(error)[:500],
               detail=_detail(job, retry_in_seconds=round(delay, 1)))
    return "retry"


def _mark_failed(store: Store, job: Job, reply: str, *, owner: str) -> None:
    with store.transaction() as session:
        _lock_message(session, job.message_id)
        session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.FAILED, last_reply=reply[:500], lease_owner=None, lease_expires_at=None)
        )
        record(session, job.message_id, "delivery_failed", actor=ACTOR, reason=reply[:500],
               detail=_detail(job, dead_letter=True))
        _settle(session, job.message_id)


def _hold(store: Store, job: Job, reason: str) -> None:
    with store.transaction() as session:
        _lock_message(session, job.message_id)
        hold_recipient(session, job.organisation, job.recipient, reason=reason, actor=ACTOR, include=job.id)


def _release(store: Store, job: Job, *, owner: str, at: dt.datetime) -> None:
    """Give a claimed row back untried (its channel is paused): the attempt does not count."""
    with store.transaction() as session:
        session.execute(
            update(Delivery).where(_owned(job, owner))
            .values(status=D.PENDING, attempts=Delivery.attempts - 1, next_attempt_at=at,
                    lease_owner=None, lease_expires_at=None)
        )


def _release_all(store: Store, jobs: list[Job], *, owner: str, at: dt.datetime) -> None:
    for job in jobs:
        _release(store, job, owner=owner, at=at)


def _admit(store: Store, job: Job, recipient: Recipient, status: KeyStatus, now: dt.datetime) -> str | None:
    with store.transaction() as session:
        return admission(session, job.organisation, recipient, status, actor=ACTOR, now=now)


def _content(store: Store, message_id: str) -> tuple[NormalizedMessage, dt.datetime] | None:
    with store.read() as session:
        message = session.get(Message, message_id)
        if message is None or message.content is None:
            return None
        attachments = list(session.exec(select(Attachment).where(Attachment.message_id == message_id)))
        return codec.unseal(store.vault, message, attachments), message.received_at


class _Run:
    """One call of deliver_pending: the claimed jobs, the channels, what was learnt about keys."""

    def __init__(self, store: Store, config: Config, directory: RecipientDirectory | None, metrics: Metrics,
                 channels: Mapping[str, Channel], owner: str, now: dt.datetime) -> None:
        self.store, self.settings, self.directory = store, config.delivery, directory
        self.metrics, self.channels, self.owner, self.now = metrics, channels, owner, now
        self.paused: set[str] = set()
        self.days_left: dict[str, int] = {}
        self.contents: dict[str, tuple[NormalizedMessage, dt.datetime] | None] = {}
        self.admitted: dict[tuple[str, str], tuple[str | None, bytes | None]] = {}

    async def deliver(self, job: Job) -> str:
        """Attempt one job; returns the outcome label (delivered, retry, failed, held, released)."""
        correlation_id.set(job.message_id)
        try:
            return await self._attempt(job)
        except Exception as exc:
            # the one boundary per row: an unforeseen error costs this row an attempt, not the batch
            log.exception("delivery %s: unexpected error; retried later", job.id)
            return await asyncio.to_thread(_mark_retry, self.store, job,
                                           DeliveryError(f"internal error: {type(exc).__name__}"),
                                           self.settings, owner=self.owner, now=self.now)

    async def _attempt(self, job: Job) -> str:
        if job.channel in self.paused:
            retry_at = self.now + dt.timedelta(seconds=self.settings.retry_base_seconds)
            await asyncio.to_thread(_release, self.store, job, owner=self.owner, at=retry_at)
            return "released"
        if job.attempts > self.settings.max_attempts:
            # earlier attempts never finished (the process died mid-send each time): stop the loop
            await asyncio.to_thread(_mark_failed, self.store, job, f"gave up after {job.attempts - 1} "
                                    "attempts that never finished", owner=self.owner)
            return "failed"
        problem, item = await asyncio.to_thread(self._prepare, job)
        if problem is not None or item is None:
            reason = problem or "nothing to send"
            log.warning("delivery %s held: %s", job.id, reason)
            await asyncio.to_thread(_hold, self.store, job, reason)
            return "held"
        channel = self.channels[job.channel]
        started = time.perf_counter()
        try:
            sent = await channel.send(item)
        except EncryptionError as exc:
            await asyncio.to_thread(_hold, self.store, job, f"key cannot be used: {exc}")
            return "held"
        except PermanentDeliveryError as exc:
            log.warning("delivery %s dead-lettered: %s", job.id, exc)
            await asyncio.to_thread(_mark_failed, self.store, job, str(exc), owner=self.owner)
            return "failed"
        except (TransientDeliveryError, TlsRequired) as exc:
            if isinstance(exc, (SmtpAuthFailed, TlsRequired)):
                # the channel, not this message, is at fault: stop using it for this run
                log.error("channel %s paused for this run: %s", job.channel, exc)
                self.paused.add(job.channel)
            return await asyncio.to_thread(_mark_retry, self.store, job, exc, self.settings,
                                           owner=self.owner, now=self.now)
        finally:
            self.metrics.delivery_attempt_seconds.labels(job.channel).observe(time.perf_counter() - started)
        if not await asyncio.to_thread(_mark_delivered, self.store, job, sent, owner=self.owner):
            log.warning("delivery %s was sent but its lease had passed to another worker", job.id)
        log.info("delivered %s via %s: %s", job.id, job.channel, sent.reply)
        return "delivered"

    def _prepare(self, job: Job) -> tuple[str | None, Outbound | None]:
        """The checks before every send, in order; a reason to hold, or what to send."""
        if job.channel not in self.settings.channels or job.channel not in self.channels:
            return f"channel {job.channel} is turned off", None
        if self.directory is None:
            return "no recipients file is configured", None
        try:
            recipient = self.directory.get(job.organisation, job.recipient)
        except UnknownRecipient as exc:
            return str(exc.args[0]), None
        admitted = self.admitted.get((job.organisation, job.recipient))
        if admitted is None:
            # once per recipient and run: the key file is read once, and the bytes checked are
            # the bytes encrypted to
            key, status = self._key(recipient)
            self._note_key(job, status)
            problem = _admit(self.store, job, recipient, status, self.now)
            admitted = self.admitted[(job.organisation, job.recipient)] = (problem, key)
        problem, key = admitted
        if problem is not None or key is None:
            return problem or "no key material", None
        if job.message_id not in self.contents:
            self.contents[job.message_id] = _content(self.store, job.message_id)
        content = self.contents[job.message_id]
        if content is None:
            return "message content is gone (purged)", None
        message, received_at = content
        return None, Outbound(delivery_token(job.idempotency_key), message, recipient, key,
                              job.message_id, received_at)

    def _key(self, recipient: Recipient) -> tuple[bytes | None, KeyStatus]:
        kind, path = recipient.key_kind, recipient.key_path
        if kind is None or path is None:
            return None, check_recipient_key(recipient, now=self.now)  # says why: no key material
        try:
            data = path.read_bytes()
        except OSError as exc:
            return None, KeyStatus(False, f"cannot read {path}: {exc.strerror}", None, None)
        if kind is KeyKind.PGP:
            return data, check_pgp_key(data, now=self.now)
        trust = self.settings.trust_store
        try:
            anchors = trust.read_bytes() if trust is not None else None
        except OSError as exc:
            return None, KeyStatus(False, f"cannot read trust store {trust}: {exc.strerror}", None, None)
        return data, check_smime_cert(data, trust_store=anchors, now=self.now)

    def _note_key(self, job: Job, status: KeyStatus) -> None:
        if status.days_left is not None and status.valid:
            known = self.days_left.get(job.channel, status.days_left)
            self.days_left[job.channel] = min(status.days_left, known)
        if status.expires_within(self.settings.key_warning_days):
            log.warning("recipient %s of %s: key expires in %s days", job.recipient, job.organisation,
                        status.days_left)


async def deliver_pending(store: Store, config: Config, directory: RecipientDirectory | None,
                          metrics: Metrics, *, owner: str, now: dt.datetime | None = None, limit: int = 50,
                          channels: Mapping[str, Channel] | None = None, lanes: int = 4) -> int:
    """Claim due outbox rows and attempt each once; returns how many were handled.

    `lanes` rows are in flight at once, so one row's encryption and commit overlap another's
    SMTP exchange (the SMTP connection itself carries one transaction at a time). `channels`
    replaces the configured ones (tests, bench); they are then not closed here.
    """
    when = now or utcnow()
    ttl = dt.timedelta(seconds=config.delivery.lease_seconds)
    jobs = await asyncio.to_thread(claim, store, owner, now=when, ttl=ttl, limit=limit)
    if not jobs:
        return 0
    own = channels is None
    run = _Run(store, config, directory, metrics,
               build_channels(config.delivery, secrets_dir=directory.source.parent
                              if directory is not None and directory.source is not None else None)
               if channels is None else channels, owner, when)
    queue = list(reversed(jobs))
    handled = 0

    async def lane() -> None:
        nonlocal handled
        while queue:
            job = queue.pop()
            outcome = await run.deliver(job)
            if outcome != "released":
                handled += 1
                metrics.deliveries.labels(job.channel, outcome).inc()

    tasks = [asyncio.create_task(lane()) for _ in range(max(1, min(lanes, len(jobs))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # one lane died (or we were cancelled at shutdown): stop the others before the channels
        # close. Rows in flight stay under lease (taken up again when it runs out); rows not
        # started yet are given back at once.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        unstarted, queue[:] = list(queue), []
        await asyncio.shield(asyncio.to_thread(_release_all, store, unstarted, owner=owner, at=when))
        raise
    finally:
        if own:
            for channel in run.channels.values():
                await channel.aclose()
        for name, days in run.days_left.items():
            metrics.recipient_key_days_left.labels(name).set(days)
    return handled
