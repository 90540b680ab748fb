"""The collector's dispatcher: leases due mailboxes, polls them with bounded concurrency, decides what a
poll's failure means for the mailbox, and gives the lease back with the next due time.

Scheduling state lives in the database (`mailbox.next_poll_at` and the lease), so any number of
instances can share the mailboxes and a restart resumes where the last run left off.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from collector import leases
from collector.breaker import Backoff
from collector.ledger import MailboxKey
from collector.poll import poll_mailbox
from collector.poll_result import PollResult
from connectors.base import AuthError, ConfigurationError, Connector, TransientError
from core.config import CollectorSettings
from core.logs import correlation_id
from core.metrics import IN_FLIGHT, Metrics
from core.notify import Notifier
from core.storage.db import Store
from core.storage.models import Mailbox, MailboxStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailboxRuntime:
    key: MailboxKey
    connector: Connector
    interval: float
    fingerprint: str


def settings_fingerprint(settings: Mapping[str, Any], *, key: bytes = b"postbud credentials") -> str:
    """Identifies a mailbox's configured credentials, so a re-authentication stop can lift when they change.

    `settings` must carry the secrets' revealed values (not their `{ file = ... }` references): a
    corrected password in the same file is a change. Keyed, so the stored value reveals nothing.
    """
    data = json.dumps(settings, sort_keys=True, default=str).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]


def poll_budget(settings: CollectorSettings, connector: Connector) -> int:
    """`poll_request_budget`, or more where the connector's own bound on a poll is higher: a local
    source's requests cost no provider anything (`Connector.poll_requests`)."""
    return max(settings.poll_request_budget, int(getattr(connector, "poll_requests", 0)))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        settings: CollectorSettings,
        notifier: Notifier,
        *,
        owner: str,
        jitter: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.notifier = notifier
        self.owner = owner
        self.jitter = jitter
        self.clock = clock
        self.backoff = Backoff(threshold=settings.breaker_threshold, cooldown=settings.breaker_cooldown_seconds,
                               max_cooldown=settings.breaker_max_cooldown_seconds)
        self.mailboxes: dict[int, MailboxRuntime] = {}
        self.organisations: frozenset[str] = frozenset()  # configured CVRs: where foreign-addressed mail goes
        self.running: dict[int, asyncio.Task[None]] = {}
        self._lost: set[int] = set()
        self._unfinished: set[int] = set()  # polls that ended on their budget after making progress
        self.new_work = 0  # letters moved on by polls so far (PollResult.new_work): run --once's yardstick
        self._provider_slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.max_concurrent_per_provider)
        )
        self._slot_freed = asyncio.Event()

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    async def dispatch(self, *, all_due: bool = False, only: set[int] | None = None,
                       unpolled_since: datetime | None = None) -> list[int]:
        """Lease what is due (everything with `all_due`; among `only` when given; with `unpolled_since`,
        only what no instance polled successfully since then) up to the free slots and start polling it."""
        # A few at a time, so instances sharing the database share a busy mailbox set between them
        # instead of the first one to look taking all of it.
        free = min(self.settings.max_concurrent_polls - len(self.running), self.settings.claim_batch)
        candidates = [
            mailbox_id for mailbox_id in self.mailboxes
            if mailbox_id not in self.running and (only is None or mailbox_id in only)
        ]
        now = self.clock()
        claimed = await asyncio.to_thread(
            leases.claim_due, self.store, self.owner, now=now, ttl=self.ttl, limit=free,
            candidates=candidates, due_before=now + timedelta(days=36500) if all_due else now,
            unpolled_since=unpolled_since,
        )
        for mailbox_id in claimed:
            self.running[mailbox_id] = asyncio.create_task(
                self._poll(self.mailboxes[mailbox_id]), name=f"postbud-poll-{mailbox_id}"
            )
        return claimed

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop`: at every tick, and soon after a poll frees a slot."""
        while not stop.is_set():
            self._slot_freed.clear()
            claimed: list[int] = []
            try:
                claimed = await self.dispatch()
            except Exception:  # the database may be briefly unreachable; the next tick tries again
                self.metrics.stage_errors.labels("collect").inc()
                log.exception("dispatch failed")
            # A full batch means more may be due: look again soon (other instances claim meanwhile).
            tick = 0.1 if len(claimed) >= self.settings.claim_batch else self.settings.dispatch_interval_seconds
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._slot_freed.wait())]
            await asyncio.wait(waiters, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            await asyncio.sleep(0.05)  # let a few more polls finish: one claim for all their slots

    async def run_all_once(self) -> int:
        """Poll every mailbox once, whatever its due time (cron mode and tests); a poll that ended on
        its request budget with progress is polled again. Ends when no mailbox has work it can do,
        whatever state the others are in (stopped, leased elsewhere, failing). Returns how many
        letters were collected, quarantined or acknowledged for the first time meanwhile."""
        before = self.new_work
        pending, again = set(self.mailboxes), set[int]()
        # Another instance running at the same time polls some of them: those are not polled twice.
        started = self.clock()
        while True:
            claimed = await self.dispatch(all_due=True, only=again) if again else []
            again -= set(claimed)
            if pending:
                first = await self.dispatch(all_due=True, only=pending, unpolled_since=started)
                pending -= set(first)
                claimed += first
            if not self.running:
                if not claimed:
                    break  # the rest are leased or polled by another instance, stopped, or cannot start
                continue
            if (pending or again) and len(claimed) >= self.settings.claim_batch:
                await asyncio.sleep(0.05)  # more may be due: claim again soon, leaving others a turn
                continue
            await asyncio.wait(list(self.running.values()), return_when=asyncio.FIRST_COMPLETED)
            more = self._unfinished & set(self.mailboxes)
            self._unfinished -= more
            again |= more
        await self.wait_idle()
        return self.new_work - before

    async def wait_idle(self) -> None:
        while self.running:
            await asyncio.wait(list(self.running.values()))

    async def shutdown(self, *, timeout: float = 30.0) -> None:
        """Let in-flight polls finish (bounded), then give every lease back."""
        if self.running:
            _, late = await asyncio.wait(list(self.running.values()), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await asyncio.to_thread(leases.release_all, self.store, self.owner)

    async def _poll(self, mb: MailboxRuntime) -> None:
        provider = mb.key.provider
        correlation_id.set(f"{mb.key.organisation_cvr}/{mb.key.name}")
        heartbeat = asyncio.create_task(self._heartbeat(mb.key.id, asyncio.current_task()))
        outcome, error, retry_after = "ok", None, None
        result: PollResult | None = None
        try:
            async with self._provider_slots[provider]:
                with IN_FLIGHT.track("poll"):
                    result = await poll_mailbox(self.store, mb.key, mb.connector, self.metrics,
                                                retries=self.settings.retries,
                                                budget=poll_budget(self.settings, mb.connector),
                                                organisations=self.organisations)
            retry_after = result.retry_after
            if result.failed:
                outcome = "partial"
        except AuthError as exc:
            outcome = "auth"
            error = f"needs re-authentication: {exc}"[:500]
            await asyncio.to_thread(self._needs_reauth, mb, str(exc))
        except ConfigurationError as exc:
            outcome = "config"
            error = f"configuration: {exc}"[:500]
            await asyncio.to_thread(self._misconfigured, mb, str(exc))
        except TransientError as exc:
            outcome, error, retry_after = "transient", str(exc)[:500], exc.retry_after
        except asyncio.CancelledError:
            if mb.key.id not in self._lost:
                raise
            outcome = "lease_lost"
            log.warning("lease lost to another instance; poll abandoned")
        except Exception as exc:
            outcome, error = "error", f"unexpected: {type(exc).__name__}: {exc}"[:500]
            self.metrics.stage_errors.labels("collect").inc()
            log.exception("poll failed unexpectedly")
        finally:
            heartbeat.cancel()
            self._lost.discard(mb.key.id)
            self.running.pop(mb.key.id, None)
            self.metrics.polls.labels(provider, outcome).inc()
            if result is not None:
                self.new_work += result.new_work
            more = result is not None and result.more and result.progressed
            if more:
                self._unfinished.add(mb.key.id)
            released = await asyncio.to_thread(
                self._release, mb, outcome, error, retry_after, more)
            self._slot_freed.set()
        if released is not None:
            self._log_outcome(mb, outcome, error, released, result)

    def _release(self, mb: MailboxRuntime, outcome: str, error: str | None, retry_after: float | None,
                 more: bool) -> leases.Released | None:
        failed = outcome in ("auth", "config", "transient", "error")

        def delay(failures: int) -> tuple[float, bool]:
            if more:
                return 0.0, False  # work left that the budget cut short: due again at once
            seconds, paused = self.backoff.delay(failures if failed else 0, interval=mb.interval,
                                                 retry_after=retry_after)
            # Jitter spreads polls around the interval (not after it), so the mean period stays the interval.
            return max(0.0, seconds + random.uniform(-self.jitter, self.jitter) / 2), paused

        return leases.release(self.store, mb.key.id, self.owner, now=self.clock(), delay=delay,
                              failed=failed, error=error)

    def _log_outcome(self, mb: MailboxRuntime, outcome: str, error: str | None, released: leases.Released,
                     result: PollResult | None) -> None:
        """The log says what happened and, truthfully, when the next attempt is."""
        wait = max(0.0, (released.next_poll_at - self.clock()).total_seconds())
        at = released.next_poll_at.strftime("%H:%M:%S")
        if outcome == "transient":
            if released.status == MailboxStatus.PAUSED:
                log.warning("poll failed %d times in a row; mailbox paused, next attempt in %.0fs (%s UTC): %s",
                            released.failures, wait, at, error)
            else:
                log.warning("poll failed (%d in a row), next attempt in %.0fs (%s UTC): %s",
                            released.failures, wait, at, error)
        elif outcome == "partial" and result is not None:
            log.warning("poll partly failed: %d of its requests still failed after retries (kept: %d collected, "
                        "%d acknowledged); next attempt in %.0fs (%s UTC)", result.failed, result.collected,
                        result.acknowledged, wait, at)
        elif outcome == "error":
            log.error("poll failed unexpectedly (%d in a row); next attempt in %.0fs (%s UTC)",
                      released.failures, wait, at)

    async def _heartbeat(self, mailbox_id: int, poll: asyncio.Task[Any] | None) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            held = await asyncio.to_thread(
                leases.renew, self.store, mailbox_id, self.owner, now=self.clock(), ttl=self.ttl
            )
            if not held and poll is not None:
                self._lost.add(mailbox_id)
                poll.cancel()
                return

    def _needs_reauth(self, mb: MailboxRuntime, reason: str) -> None:
        self._stop(
            mb, MailboxStatus.NEEDS_REAUTH, f"needs re-authentication: {reason}",
            "mailbox needs re-authentication; polling stopped until its credentials change: %s", reason,
            subject=f"Mailbox {mb.key.name} ({mb.key.provider}) needs re-authentication",
            text=f"postbud stopped polling this mailbox because the provider refused its credentials: {reason}\n"
            "Update the credentials in the configuration; polling resumes when they change.",
        )

    def _misconfigured(self, mb: MailboxRuntime, reason: str) -> None:
        """Not a credentials problem: the settings pick nothing (or several) of what the provider offers."""
        self._stop(
            mb, MailboxStatus.ERROR, f"configuration: {reason}",
            "mailbox configuration does not match the provider; polling stopped until it changes: %s", reason,
            subject=f"Mailbox {mb.key.name} ({mb.key.provider}) is misconfigured",
            text=f"postbud stopped polling this mailbox: {reason}\n"
            "Fix its settings in the configuration and reload (SIGHUP); polling resumes then.",
        )

    def _stop(self, mb: MailboxRuntime, status: MailboxStatus, error: str, log_text: str, reason: str, *,
              subject: str, text: str) -> None:
        """Stops polling a mailbox until its settings change: the state and its reason kept, logged and notified."""
        with self.store.transaction() as session:
            row = session.get(Mailbox, mb.key.id)
            if row is None:
                return
            row.status = status
            row.last_error = error[:500]
            row.credentials_fingerprint = mb.fingerprint
        log.error(log_text, reason)
        self.notifier.notify(mb.key.organisation_cvr, subject, text)
