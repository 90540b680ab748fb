"""The outbox worker: claims due outbox rows with a lease, sends each, records the outcome in one transaction.

A crash between the remote side's acceptance and the commit leaves the row `sending` under a lease,
with `send_started_at` set; the same instance takes it up at its next start, another one when the
lease expires, and it is sent again with the same Message-ID (derived from the row's idempotency
key), so the receiver can drop the duplicate. An attempt counts only once its send has started, and
a fault of the channel (relay down, TLS, credentials) pauses the channel without counting at all. Nothing is ever sent to a recipient who
is not approved or whose key does not check out today: their rows are held and their messages go
back to held for re-routing. Back-off state lives in the row (`next_attempt_at`), not in memory.

Throughput: the claimed rows are checked, read and encrypted a chunk at a time in one worker thread
(not one thread hop per letter; delivery/prepare.py) while lanes send the chunk before; each lane
takes the prepared rows in runs and sends over one of the channel's connections (lanes.py: a run's
attempts are charged in one commit, and accepted sends are recorded with the next one), so a letter
costs a fraction of a transaction. A chunk is a whole batch by default: the lanes charge what is
ready together, so each chunk costs at least one more outbox transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping

from core.config import Config
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import utcnow
from delivery import outbox
from delivery.approval import Invitation, send_invitation
from delivery.channels import Channel, build_channels
from delivery.errors import DeliveryError
from delivery.lanes import Lanes, run_size
from delivery.lanes import Ready as _Ready
from delivery.outbox import Job
from delivery.pauses import ChannelPauses
from delivery.preferences import RouteCache
from delivery.prepare import Preparer
from delivery.recipients import RecipientsFile
from delivery.reroute import reroute_switched_off

log = logging.getLogger(__name__)
# Rows read and encrypted per worker-thread hop. Each chunk's sends are charged in a transaction of
# their own, so small chunks, though the lanes start sooner, cost CPU that the busy daemon lacks: at
# 10 (five chunks a batch of 50) the delivery stage took 1.1 ms of CPU a letter, at 50 0.8 ms.
CHUNK = 50


class _Run:
    """One call of deliver_pending: the claimed jobs, the channels, what was learnt about keys."""

    def __init__(self, store: Store, config: Config, directory: RecipientsFile | None, metrics: Metrics,
                 channels: Mapping[str, Channel], owner: str, now: dt.datetime, pauses: ChannelPauses) -> None:
        self.settings, self.channels, self.config = config.delivery, channels, config
        self.invitations: list[Invitation] = []  # new confirmation codes, mailed after their commit
        self.days_left: dict[str, int] = {}
        self.lanes = Lanes(store, config.delivery, metrics, channels, pauses, owner=owner, now=now,
                           after_hold=self._send_invitations)
        routes = RouteCache(store, config, now)  # notice and digest recipients' own settings
        self.preparer = Preparer(store, config.delivery, routes, directory, channels, now, pauses,
                                 invitations=self.invitations, days_left=self.days_left)

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
            for item in await asyncio.to_thread(run.preparer.prepare, jobs[first:first + CHUNK]):
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
