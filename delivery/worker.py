"""The outbox worker: claims due outbox rows with a lease, sends each, records the outcome in one transaction.

A crash between the remote side's acceptance and the commit leaves the row `sending` under a lease,
with `send_started_at` set; the same instance takes it up at its next start, another one when the
lease expires, and it is sent again with the same Message-ID (derived from the row's idempotency
key), so the receiver can drop the duplicate. An attempt counts only once its send has started, and
a fault of the channel (relay down, TLS, credentials) pauses the channel without counting at all. Nothing is ever sent to a recipient who
is not approved or whose key does not check out today: their rows are held and their messages go
back to held for re-routing. Back-off state lives in the row (`next_attempt_at`), not in memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping

from sqlmodel import select

from core import codec
from core.config import Config, DeliverySettings
from core.domain import NormalizedMessage
from core.logs import correlation_id
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import Attachment, Message, utcnow
from delivery import outbox
from delivery.approval import Invitation, admission, send_invitation
from delivery.channels import Channel, Outbound, build_channels, delivery_token
from delivery.errors import Action, DeliveryError
from delivery.keys import (
    KeyStatus,
    check_pgp_key,
    check_recipient_key,
    check_smime_cert,
)
from delivery.onboarding import uploaded_key
from delivery.outbox import ACTOR, Job
from delivery.pauses import ChannelPauses
from delivery.recipients import KeyKind, Recipient, RecipientsFile, UnknownRecipient

log = logging.getLogger(__name__)


def _admit(store: Store, job: Job, recipient: Recipient, status: KeyStatus, now: dt.datetime,
           settings: DeliverySettings, invitations: list[Invitation], key: bytes | None) -> str | None:
    with store.transaction() as session:
        return admission(session, job.organisation, recipient, status, actor=ACTOR, now=now, settings=settings,
                         invitations=invitations, key=key)


def _with_uploaded_key(store: Store, org: str, recipient: Recipient) -> tuple[Recipient, bytes | None]:
    with store.read() as session:
        return uploaded_key(session, org, recipient)


def _content(store: Store, message_id: str) -> tuple[NormalizedMessage, dt.datetime] | None:
    with store.read() as session:
        message = session.get(Message, message_id)
        if message is None or message.content is None:
            return None
        attachments = list(session.exec(select(Attachment).where(Attachment.message_id == message_id)))
        return codec.unseal(store.vault, message, attachments), message.received_at


class _Run:
    """One call of deliver_pending: the claimed jobs, the channels, what was learnt about keys."""

    def __init__(self, store: Store, config: Config, directory: RecipientsFile | None, metrics: Metrics,
                 channels: Mapping[str, Channel], owner: str, now: dt.datetime, pauses: ChannelPauses) -> None:
        self.store, self.settings, self.directory = store, config.delivery, directory
        self.metrics, self.channels, self.owner, self.now = metrics, channels, owner, now
        self.config = config
        self.invitations: list[Invitation] = []  # new confirmation codes, mailed after their commit
        self.pauses = pauses
        self.days_left: dict[str, int] = {}
        self.contents: dict[str, tuple[NormalizedMessage, dt.datetime] | None] = {}
        self.admitted: dict[tuple[str, str], tuple[str | None, bytes | None]] = {}
        # recipients with a key from the confirmation page (the file names none), and its bytes
        self.uploaded: dict[tuple[str, str], tuple[Recipient, bytes | None]] = {}

    async def deliver(self, job: Job) -> str:
        """Attempt one job; returns the outcome label (delivered, retry, failed, held, released)."""
        correlation_id.set(job.message_id)
        try:
            return await self._attempt(job)
        except Exception as exc:
            # the one boundary per row: an unforeseen error costs this row an attempt, not the batch
            log.exception("delivery %s: unexpected error; retried later", job.id)
            return await asyncio.to_thread(outbox.mark_retry, self.store, job,
                                           DeliveryError(f"internal error: {type(exc).__name__}"),
                                           self.settings, owner=self.owner, now=self.now)

    async def _attempt(self, job: Job) -> str:
        paused_until = self.pauses.until(job.channel, self.now)
        if paused_until is not None:
            await asyncio.to_thread(outbox.release, self.store, job, owner=self.owner, at=paused_until)
            return "released"
        problem, item = await asyncio.to_thread(self._prepare, job)
        if problem is not None or item is None:
            reason = problem or "nothing to send"
            log.warning("delivery %s held: %s", job.id, reason)
            await asyncio.to_thread(outbox.hold, self.store, job, reason)
            await self._send_invitations()
            return "held"
        channel = self.channels[job.channel]
        started_job = await asyncio.to_thread(outbox.start_send, self.store, job, owner=self.owner, now=self.now)
        if started_job is None:
            return "released"  # the lease passed to another worker: it sends the row
        job = started_job
        started = time.perf_counter()
        try:
            sent = await channel.send(item)
        except DeliveryError as exc:
            return await self._failed(job, exc)
        finally:
            self.metrics.delivery_attempt_seconds.labels(job.channel).observe(time.perf_counter() - started)
        self.pauses.resume(job.channel)
        self.metrics.delivery_channel_paused.labels(job.channel).set(0)
        if not await asyncio.to_thread(outbox.mark_delivered, self.store, job, sent.reply, sent.message_id,
                                       owner=self.owner, detail=sent.detail):
            log.warning("delivery %s was sent but its lease had passed to another worker", job.id)
        log.info("delivered %s via %s: %s", job.id, job.channel, sent.reply)
        return "delivered"

    async def _failed(self, job: Job, exc: DeliveryError) -> str:
        """Do what the error says (errors.py); returns the outcome label."""
        if exc.alert is not None:
            self.metrics.delivery_refused.labels(job.channel, exc.alert).inc()
        match exc.action:
            case Action.HOLD_RECIPIENT:
                await asyncio.to_thread(outbox.hold, self.store, job, f"key cannot be used: {exc}")
                return "held"
            case Action.DEAD_LETTER if job.in_doubt:
                # a relay that drops duplicates may refuse the re-send of a letter it already has
                await asyncio.to_thread(outbox.settle_in_doubt, self.store, job, f"the re-send was refused: {exc}",
                                        owner=self.owner)
                return "delivered"
            case Action.DEAD_LETTER:
                log.warning("delivery %s dead-lettered: %s", job.id, exc)
                await asyncio.to_thread(outbox.mark_failed, self.store, job, str(exc), owner=self.owner)
                return "failed"
            case Action.PAUSE_CHANNEL:
                # the channel, not this letter, is at fault: the letter waits for it, uncharged
                until = self.pauses.pause(job.channel, self.now)
                log.error("channel %s paused until %s: %s", job.channel, until.isoformat(timespec="seconds"), exc)
                self.metrics.delivery_channel_paused.labels(job.channel).set(1)
                await asyncio.to_thread(outbox.channel_paused, self.store, job, exc, owner=self.owner, at=until)
                return "paused"
        return await asyncio.to_thread(outbox.mark_retry, self.store, job, exc, self.settings,
                                       owner=self.owner, now=self.now)

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
        uploaded: bytes | None = None
        if recipient.key_path is None:
            pair = (job.organisation, job.recipient)
            if pair not in self.uploaded:
                self.uploaded[pair] = _with_uploaded_key(self.store, job.organisation, recipient)
            recipient, uploaded = self.uploaded[pair]
        if job.channel in self.directory.channels_off(job.organisation):
            # held, so routing again sends the recipient by the organisation's default channel
            return f"channel {job.channel} is switched off for organisation {job.organisation}", None
        admitted = self.admitted.get((job.organisation, job.recipient))
        if job.channel == "post" or (recipient.tls_only and job.channel == "email"):
            # paper cannot be encrypted, and a TLS-only forward target is sent in clear on purpose: the
            # administrator's entry in the file (postal address, tls_only) is the approval
            admitted = (None if job.channel != "post" or recipient.postal_address is not None
                        else f"recipient {recipient.id} has no postal_address", b"")
        if admitted is None:
            # once per recipient and run: the key file is read once, and the bytes checked are
            # the bytes encrypted to
            key, status = self._key(recipient, uploaded)
            self._note_key(job, status)
            problem = _admit(self.store, job, recipient, status, self.now, self.settings, self.invitations, key)
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

    async def _send_invitations(self) -> None:
        """Mail the confirmation codes a changed key called for, over the e-mail channel's TLS sender."""
        while self.invitations:
            invitation = self.invitations.pop()
            sender = getattr(self.channels.get("email"), "sender", None)
            try:
                name = self.config.organisation(invitation.organisation).name
            except KeyError:
                name = invitation.organisation
            if sender is None:
                log.warning("no e-mail channel: the new confirmation code of %s was not sent; invite again",
                            invitation.recipient)
                continue
            try:
                await send_invitation(sender, invitation, self.settings, organisation_name=name)
            except DeliveryError as exc:
                log.warning("confirmation code for %s not sent (%s); invite again", invitation.recipient, exc)

    def _key(self, recipient: Recipient, uploaded: bytes | None) -> tuple[bytes | None, KeyStatus]:
        kind, path = recipient.key_kind, recipient.key_path
        if kind is None or (path is None and uploaded is None):
            return None, check_recipient_key(recipient, now=self.now)  # says why: no key material
        try:
            data = path.read_bytes() if path is not None else uploaded or b""
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


async def deliver_pending(store: Store, config: Config, directory: RecipientsFile | None,
                          metrics: Metrics, *, owner: str, now: dt.datetime | None = None, limit: int = 50,
                          channels: Mapping[str, Channel] | None = None, lanes: int = 4,
                          pauses: ChannelPauses | None = None) -> int:
    """Claim due outbox rows and attempt each once; returns how many were handled.

    `lanes` rows are in flight at once, so one row's encryption and commit overlap another's
    SMTP exchange (the SMTP connection itself carries one transaction at a time). `channels`
    replaces the configured ones (tests, bench); they are then not closed here. `pauses` carries
    channel pauses from one call to the next (the daemon keeps one).
    """
    when = now or utcnow()
    ttl = dt.timedelta(seconds=config.delivery.lease_seconds)
    jobs = await asyncio.to_thread(outbox.claim, store, owner, now=when, ttl=ttl, limit=limit)
    if not jobs:
        return 0
    own = channels is None
    run = _Run(store, config, directory, metrics,
               build_channels(config.delivery) if channels is None else channels, owner, when,
               pauses or ChannelPauses(config.delivery.retry_base_seconds, config.delivery.retry_max_seconds))
    queue = list(reversed(jobs))
    handled = 0

    async def lane() -> None:
        nonlocal handled
        while queue:
            job = queue.pop()
            outcome = await run.deliver(job)
            if outcome not in ("released", "paused"):
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
        await asyncio.shield(asyncio.to_thread(outbox.release_all, store, unstarted, owner=owner, at=when))
        raise
    finally:
        if own:
            for channel in run.channels.values():
                await channel.aclose()
        for name, days in run.days_left.items():
            metrics.recipient_key_days_left.labels(name).set(days)
    return handled
