"""The sending side of a delivery run: lanes take prepared rows in runs, charge a run's attempts in one
commit, then send its letters one after another.

Charging a run at once (not each letter before its own send) is what keeps the outbox's transactions
few: a lane's run of up to RUN letters costs one start, shared with whatever the other lanes start at
that moment (group_commit.py), and the accepted sends are recorded with the next start. Every
letter's attempt is still committed before any byte of it goes out. A crash during a run leaves its
letters not yet sent in doubt, as a crash during a send leaves that one: they are sent again under the
same Message-ID. A run that stops without a crash (the channel paused, the run cancelled) gives its
unsent letters back uncharged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge, Histogram

from core.config import DeliverySettings
from core.logs import correlation_id
from core.metrics import Metrics
from core.storage.db import Store
from delivery import outbox
from delivery.channels import Channel, Outbound
from delivery.errors import Action, DeliveryError
from delivery.group_commit import Delivered, GroupCommitter, Start
from delivery.outbox import Job
from delivery.pauses import ChannelPauses

log = logging.getLogger(__name__)
RUN = 8  # letters a lane charges at once at most: a crash leaves up to this many per lane in doubt


@dataclass(frozen=True)
class Ready:
    """A claimed row after the checks: what to send (made ahead when the channel composes), or why not."""

    job: Job
    problem: str | None = None  # hold the recipient, for this reason
    item: Outbound | None = None
    failure: DeliveryError | None = None  # composing failed: handled as that send's failure
    error: Exception | None = None  # unforeseen: costs the row an attempt
    paused: bool = False


def run_size(jobs: int, lanes: int) -> int:
    """Letters per run: the claimed rows shared out over the lanes, at most RUN."""
    return max(1, min(RUN, -(-jobs // max(1, lanes))))


class Lanes:
    """Sends one delivery run's prepared rows and records each outcome in its transaction."""

    def __init__(self, store: Store, settings: DeliverySettings, metrics: Metrics, channels: Mapping[str, Channel],
                 pauses: ChannelPauses, *, owner: str, now: dt.datetime,
                 after_hold: Callable[[], Awaitable[None]]) -> None:
        self.store, self.settings, self.metrics, self.channels = store, settings, metrics, channels
        self.pauses, self.owner, self.now, self.after_hold = pauses, owner, now, after_hold
        self.commits = GroupCommitter(store, owner=owner, now=now)
        self.recorded: list[tuple[Job, asyncio.Future[Any]]] = []  # accepted sends, commit under way
        self.probes: dict[str, asyncio.Lock] = {}
        self.taken: set[str] = set()  # rows a lane has taken up
        self.unsent: dict[str, Job] = {}  # rows charged (or being charged) whose send has not begun, as claimed
        # each channel's per-send metrics, looked up once a run instead of twice a letter
        self._sent_metrics: dict[str, tuple[Histogram, Gauge]] = {}

    async def lane(self, ready: asyncio.Queue[Ready | None], size: int, done: Callable[[Job, str], None]) -> None:
        """Take runs of up to `size` prepared rows (those ready now) until a None; `done` hears each outcome."""
        last = False
        while not last and (first := await ready.get()) is not None:
            run = [first]
            while len(run) < size and not ready.empty():
                if (item := ready.get_nowait()) is None:
                    last = True
                    break
                run.append(item)
            for job, outcome in await self.deliver_run(run):
                done(job, outcome)

    async def deliver_run(self, run: list[Ready]) -> list[tuple[Job, str]]:
        """Attempt a run of prepared rows: those to send are charged in one commit, then sent in turn."""
        outcomes, sending = [], []
        for ready in run:
            self.taken.add(ready.job.id)
            if (ready.error is None and not ready.paused and ready.problem is None and ready.item is not None
                    and self.pauses.until(ready.job.channel, self.now) is None):
                sending.append(ready)
                self.unsent[ready.job.id] = ready.job
            else:
                outcomes.append((ready.job, await self.deliver(ready)))
        if not sending:
            return outcomes
        started = await asyncio.gather(*(self.commits.submit(Start(r.job)) for r in sending), return_exceptions=True)
        for ready, result in zip(sending, started, strict=True):
            outcomes.append((ready.job, await self._charged(ready, result)))
        return outcomes

    async def deliver(self, ready: Ready, started: Job | None = None) -> str:
        """Handle one row (held, released, or sent once charged as `started`); returns the outcome label
        (delivered, retry, failed, held, released, paused)."""
        job = started or ready.job
        correlation_id.set(job.message_id)
        try:
            if ready.error is not None:
                raise ready.error
            if started is None:
                return await self._not_sent(ready)
            if not self.pauses.probing(job.channel):
                return await self._send(job, ready)
            # the channel failed lately: one send at a time tells whether it is back, not one per lane
            async with self.probes.setdefault(job.channel, asyncio.Lock()):
                return await self._send(job, ready)
        except Exception as exc:
            # the one boundary per row: an unforeseen error costs this row an attempt, not the batch
            log.error("delivery %s: unexpected error; retried later", job.id, exc_info=exc)
            self.unsent.pop(job.id, None)
            return await asyncio.to_thread(outbox.mark_retry, self.store, job,
                                           DeliveryError(f"internal error: {type(exc).__name__}"),
                                           self.settings, owner=self.owner, now=self.now)

    async def _charged(self, ready: Ready, result: Job | BaseException | None) -> str:
        if isinstance(result, Exception):  # the start could not be committed: nothing was sent
            return await self.deliver(Ready(ready.job, error=result))
        if isinstance(result, BaseException):
            raise result
        if result is None:
            self.unsent.pop(ready.job.id, None)
            return "released"  # the lease passed to another worker: it sends the row
        return await self.deliver(ready, started=result)

    async def _not_sent(self, ready: Ready) -> str:
        job = ready.job
        if ready.paused or self.pauses.until(job.channel, self.now) is not None:
            return await self._release(job)
        reason = ready.problem or "nothing to send"
        log.warning("delivery %s held: %s", job.id, reason)
        await asyncio.to_thread(outbox.hold, self.store, job, reason)
        await self.after_hold()
        return "held"

    async def _release(self, job: Job) -> str:
        """Give the row back unsent, uncharged, until the channel's pause ends."""
        paused_until = self.pauses.until(job.channel, self.now) or self.now
        await asyncio.to_thread(outbox.release_all, self.store, [self.unsent.pop(job.id, job)], owner=self.owner,
                                at=paused_until)
        return "released"

    async def _send(self, job: Job, ready: Ready) -> str:
        if self.pauses.until(job.channel, self.now) is not None:
            return await self._release(job)  # the channel paused since this run was charged
        self.unsent.pop(job.id, None)
        if ready.failure is not None:
            return await self._failed(job, ready.failure)
        assert ready.item is not None
        channel = self.channels[job.channel]
        took, paused = self._sent_metrics.get(job.channel) or self._sent_metrics.setdefault(
            job.channel, (self.metrics.delivery_attempt_seconds.labels(job.channel),
                          self.metrics.delivery_channel_paused.labels(job.channel)))
        began = time.perf_counter()
        try:
            sent = await channel.send(ready.item)
        except DeliveryError as exc:
            return await self._failed(job, exc)
        finally:
            took.observe(time.perf_counter() - began)
        self.pauses.resume(job.channel)
        paused.set(0)
        self.recorded.append((job, self.commits.submit(Delivered(job, sent.reply, sent.message_id, sent.detail))))
        log.info("delivered %s via %s: %s", job.id, job.channel, sent.reply)
        return "delivered"

    async def settle_recorded(self) -> None:
        """Wait for the accepted sends' commits; count them (a lease that passed meanwhile is logged)."""
        await self.commits.drained()
        recorded, self.recorded = self.recorded, []
        delivered: Counter[str] = Counter()  # counted per channel: one labels() lookup, not one a letter
        try:
            for job, future in recorded:
                if future.result():  # re-raises the commit's error, so the run fails as a crash would
                    delivered[job.channel] += 1
                else:
                    log.warning("delivery %s was sent but its lease had passed to another worker", job.id)
        finally:
            for channel, count in delivered.items():
                self.metrics.deliveries.labels(channel, "delivered").inc(count)

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
