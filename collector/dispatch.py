"""The collector's dispatcher: leases due mailboxes, polls them with bounded concurrency, decides what a
poll's failure means for the mailbox, and gives the lease back with the next due time.

Scheduling state lives in the database (`mailbox.next_poll_at` and the lease), so any number of
instances can share the mailboxes and a restart resumes where the last run left off.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from collector import leases
from collector.breaker import CircuitBreaker
from collector.ledger import MailboxKey
from collector.poll import poll_mailbox
from connectors.base import AuthError, Connector, TransientError
from core.config import CollectorSettings
from core.logs import correlation_id
from core.metrics import Metrics
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


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """Identifies a mailbox's configured credentials, so a re-authentication stop can lift when they change."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
        self.breaker = CircuitBreaker(
            threshold=settings.breaker_threshold, cooldown=settings.breaker_cooldown_seconds
        )
        self.mailboxes: dict[int, MailboxRuntime] = {}
        self.running: dict[int, asyncio.Task[None]] = {}
        self._lost: set[int] = set()
        self._provider_slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.max_concurrent_per_provider)
        )
        self._slot_freed = asyncio.Event()

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    async def dispatch(self, *, all_due: bool = False) -> list[int]:
        """Lease what is due (everything with `all_due`) up to the free slots and start polling it."""
        free = self.settings.max_concurrent_polls - len(self.running)
        candidates = [
            mailbox_id
            for mailbox_id, mb in self.mailboxes.items()
            if mailbox_id not in self.running and not self.breaker.is_open(mb.key.provider)
        ]
        now = self.clock()
        claimed = await asyncio.to_thread(
            leases.claim_due, self.store, self.owner, now=now, ttl=self.ttl, limit=free,
            candidates=candidates, due_before=now + timedelta(days=36500) if all_due else now,
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
            try:
                await self.dispatch()
            except Exception:  # the database may be briefly unreachable; the next tick tries again
                self.metrics.stage_errors.labels("collect").inc()
                log.exception("dispatch failed")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._slot_freed.wait())]
            await asyncio.wait(waiters, timeout=self.settings.dispatch_interval_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            await asyncio.sleep(0.05)  # let a few more polls finish: one claim for all their slots

    async def run_all_once(self) -> None:
        """Poll every mailbox once, whatever its due time (cron mode and tests)."""
        pending = set(self.mailboxes)
        while pending:
            claimed = await self.dispatch(all_due=True)
            pending -= set(claimed)
            if self.running:
                await asyncio.wait(list(self.running.values()), return_when=asyncio.FIRST_COMPLETED)
            elif not claimed:
                break  # the rest are leased by another instance, stopped, or their provider is down
        await self.wait_idle()

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
        outcome, delay, error = "ok", mb.interval, None
        try:
            async with self._provider_slots[provider]:
                await poll_mailbox(self.store, mb.key, mb.connector, self.metrics,
                                   retries=self.settings.retries)
            self.breaker.success(provider)
        except AuthError as exc:
            outcome = "auth"
            await asyncio.to_thread(self._needs_reauth, mb, str(exc))
        except TransientError as exc:
            outcome, error = "transient", str(exc)[:500]
            self.breaker.failure(provider)
            delay = max(mb.interval, exc.retry_after or 0.0)
            log.warning("poll failed, next attempt in %.0fs: %s", delay, exc)
        except asyncio.CancelledError:
            if mb.key.id not in self._lost:
                raise
            outcome = "lease_lost"
            log.warning("lease lost to another instance; poll abandoned")
        except Exception:
            outcome = "error"
            self.metrics.stage_errors.labels("collect").inc()
            log.exception("poll failed unexpectedly; the mailbox is polled again at its next turn")
        finally:
            heartbeat.cancel()
            self._lost.discard(mb.key.id)
            self.running.pop(mb.key.id, None)
            self._slot_freed.set()
            self.metrics.polls.labels(provider, outcome).inc()
            now = self.clock()
            # Jitter spreads polls around the interval (not after it), so the mean period stays the interval.
            spread = random.uniform(-self.jitter, self.jitter) / 2
            next_poll = now + timedelta(seconds=max(0.0, delay + spread))
            await asyncio.to_thread(
                leases.release, self.store, mb.key.id, self.owner, now=now,
                next_poll_at=next_poll, failed=outcome not in ("ok", "lease_lost"), error=error,
            )

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
        with self.store.transaction() as session:
            row = session.get(Mailbox, mb.key.id)
            if row is None:
                return
            row.status = MailboxStatus.NEEDS_REAUTH
            row.last_error = reason[:500]
            row.credentials_fingerprint = mb.fingerprint
        log.error("mailbox needs re-authentication; polling stopped until its credentials change")
        self.notifier.notify(
            mb.key.organisation_cvr,
            f"Mailbox {mb.key.name} ({mb.key.provider}) needs re-authentication",
            "postbud stopped polling this mailbox because the provider refused its credentials. "
            "Update the credentials in the configuration; polling resumes when they change.",
        )
