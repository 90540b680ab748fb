"""The outbox worker: claims due outbox rows with a lease, sends each, records the outcome in one transaction.

A crash between the remote side's acceptance and the commit leaves the row `sending` under a lease,
with `send_started_at` set; the same instance takes it up at its next start, another one when the
lease expires, and it is sent again with the same Message-ID (derived from the row's idempotency
key), so the receiver can drop the duplicate. An attempt counts only once its send has started, and
a fault of the channel (relay down, TLS, credentials) pauses the channel without counting at all. Nothing is ever sent to a recipient who
is not approved or whose key does not check out today: their rows are held and their messages go
back to held for re-routing. Back-off state lives in the row (`next_attempt_at`), not in memory.

Throughput: the claimed rows are read and encrypted a chunk at a time in one worker thread (not one
thread hop per letter) while lanes send the chunk before; each lane takes the prepared rows in runs
and sends over one of the channel's connections (lanes.py: a run's attempts are charged in one commit,
and accepted sends are recorded with the next one), so a letter costs a fraction of a transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping

from core.config import Config, DeliverySettings
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import utcnow
from delivery import outbox
from delivery.approval import Invitation, admission, send_invitation
from delivery.channels import Channel, Composing, Outbound, build_channels, delivery_token
from delivery.contents import Content, read_contents
from delivery.errors import DeliveryError
from delivery.lanes import Lanes, run_size
from delivery.lanes import Ready as _Ready
from delivery.keys import (
    KeyStatus,
    check_pgp_key,
    check_recipient_key,
    check_smime_cert,
)
from delivery.onboarding import uploaded_key
from delivery.outbox import ACTOR, Job
from delivery.pauses import ChannelPauses
from delivery.preferences import RouteCache
from delivery.recipients import KeyKind, Recipient, RecipientsFile, UnknownRecipient
from delivery.reroute import reroute_switched_off

log = logging.getLogger(__name__)
CHUNK = 10  # rows read and encrypted per worker-thread hop


def _admit(store: Store, job: Job, recipient: Recipient, status: KeyStatus, now: dt.datetime,
           settings: DeliverySettings, invitations: list[Invitation], key: bytes | None) -> str | None:
    with store.transaction() as session:
        return admission(session, job.organisation, recipient, status, actor=ACTOR, now=now, settings=settings,
                         invitations=invitations, key=key)


def _with_uploaded_key(store: Store, org: str, recipient: Recipient) -> tuple[Recipient, bytes | None]:
    with store.read() as session:
        return uploaded_key(session, org, recipient)


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
        self.contents: dict[str, Content | None] = {}
        self.admitted: dict[tuple[str, str], tuple[str | None, bytes | None]] = {}
        # recipients with a key from the confirmation page (the file names none), and its bytes
        self.uploaded: dict[tuple[str, str], tuple[Recipient, bytes | None]] = {}
        self.lanes = Lanes(store, config.delivery, metrics, channels, pauses, owner=owner, now=now,
                           after_hold=self._send_invitations)
        self.routes = RouteCache(store, config, now)  # notice and digest recipients' own settings

    def prepare(self, jobs: list[Job]) -> list[_Ready]:
        """The checks, the content and the encrypted message for a chunk of rows (run in a worker thread)."""
        try:
            wanted = {j.message_id for j in jobs} - set(self.contents)
            if wanted:
                self.contents.update(read_contents(self.store, wanted))
        except Exception as exc:
            return [_Ready(job, error=exc) for job in jobs]
        return [self._ready(job) for job in jobs]

    def _ready(self, job: Job) -> _Ready:
        if self.pauses.until(job.channel, self.now) is not None:
            return _Ready(job, paused=True)
        try:
            problem, item = self._prepare(job)
            if problem is not None or item is None:
                return _Ready(job, problem=problem or "nothing to send")
            channel = self.channels[job.channel]
            if isinstance(channel, Composing):
                try:
                    item = channel.compose(item)
                except DeliveryError as exc:
                    return _Ready(job, item=item, failure=exc)
            return _Ready(job, item=item)
        except Exception as exc:
            return _Ready(job, error=exc)

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
            # reroute.py moved it to the default channel unless that cannot reach the recipient: a person decides
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
        content = self.contents.get(job.message_id)
        if content is None:
            return "message content is gone (purged)", None
        message, received_at = content
        notification = self.routes.get(job.organisation, recipient, job.channel)
        return None, Outbound(delivery_token(job.idempotency_key), message, recipient, key,
                              job.message_id, received_at, notification=notification)

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
                          channels: Mapping[str, Channel] | None = None, lanes: int | None = None,
                          pauses: ChannelPauses | None = None) -> int:
    """Claim due outbox rows and attempt each once; returns how many were handled.

    `lanes` rows are in flight at once (default: twice `smtp_connections`, so a connection is not left
    idle while its lane waits for a commit). Rows are prepared (read, checked, encrypted) CHUNK at a
    time in a worker thread, the next chunk while the lanes send this one. `channels` replaces the
    configured ones (tests, bench); they are then not closed here. `pauses` carries channel pauses
    from one call to the next (the daemon keeps one).
    """
    when = now or utcnow()
    ttl = dt.timedelta(seconds=config.delivery.lease_seconds)
    if directory is not None:  # letters waiting for a channel switched off go by the default channel
        await asyncio.to_thread(reroute_switched_off, store, directory, config.delivery.channels)
    jobs = await asyncio.to_thread(outbox.claim, store, owner, now=when, ttl=ttl, limit=limit)
    if not jobs:
        return 0
    own = channels is None
    run = _Run(store, config, directory, metrics,
               build_channels(config.delivery) if channels is None else channels, owner, when,
               pauses or ChannelPauses(config.delivery.retry_base_seconds, config.delivery.retry_max_seconds))
    width = max(1, min(lanes or 2 * config.delivery.smtp_connections, len(jobs)))
    ready: asyncio.Queue[_Ready | None] = asyncio.Queue()
    handled = 0

    async def preparing() -> None:
        for first in range(0, len(jobs), CHUNK):
            for item in await asyncio.to_thread(run.prepare, jobs[first:first + CHUNK]):
                ready.put_nowait(item)
        for _ in range(width):
            ready.put_nowait(None)

    def done(job: Job, outcome: str) -> None:
        nonlocal handled
        if outcome not in ("released", "paused"):
            handled += 1
            if outcome != "delivered":  # counted once its commit is done (settle_recorded)
                metrics.deliveries.labels(job.channel, outcome).inc()

    size = run_size(len(jobs), width)
    tasks = [asyncio.create_task(preparing())] + [asyncio.create_task(run.lanes.lane(ready, size, done))
                                                   for _ in range(width)]
    try:
        await asyncio.gather(*tasks)
        await run.lanes.settle_recorded()
    except BaseException:
        # one lane died (or we were cancelled at shutdown): stop the others before the channels
        # close. Rows in flight stay under lease (taken up again when it runs out); accepted sends
        # still get recorded when they can; then rows whose send had not begun, charged or not, are
        # given back at once.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.shield(run.lanes.commits.drained())
        unsent = [*run.lanes.unsent.values(), *(job for job in jobs if job.id not in run.lanes.taken)]
        await asyncio.shield(asyncio.to_thread(outbox.release_all, store, unsent, owner=owner, at=when))
        raise
    finally:
        if own:
            for channel in run.channels.values():
                await channel.aclose()
        for name, days in run.days_left.items():
            metrics.recipient_key_days_left.labels(name).set(days)
    return handled
