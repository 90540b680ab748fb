"""`postbud run`: one asyncio loop with scheduled collect / route / housekeeping jobs and an HTTP listener.

Every scheduled job runs behind one supervised boundary (`_supervised`) that decides what an error
means: a mailbox needing new credentials stops polling, a provider that is down is retried at the
next poll, and anything unexpected is counted and logged without stopping the other jobs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from collector.ledger import MailboxKey
from collector.poll import poll_mailbox
from connectors.base import AuthError, TransientError
from postbud.config import Config
from postbud.http import EmbeddedServer, make_app, serve_task
from postbud.runtime import Runtime
from postbud.storage.models import Mailbox, MailboxStatus
from router.stage import route_next

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.config: Config = runtime.config
        self._stop = asyncio.Event()
        self._ready = False
        self._scheduler: AsyncIOScheduler | None = None
        self._server: EmbeddedServer | None = None

    # -- stages -------------------------------------------------------------------------------

    async def collect(self, mailbox: MailboxKey) -> None:
        connector = self.rt.connectors.get(mailbox.id)
        if connector is None:
            return
        outcome = "ok"
        try:
            result = await poll_mailbox(self.rt.store, mailbox, connector, self.rt.metrics)
            if result.collected or result.quarantined:
                log.info(
                    "polled %s/%s: %d collected, %d quarantined",
                    mailbox.organisation_cvr, mailbox.name, result.collected, result.quarantined,
                )
        except AuthError as exc:
            outcome = "auth"
            await asyncio.to_thread(self._needs_reauth, mailbox, str(exc))
        except TransientError as exc:
            outcome = "transient"
            log.warning("poll of %s/%s failed, retrying at the next poll: %s",
                        mailbox.organisation_cvr, mailbox.name, exc)
        finally:
            self.rt.metrics.polls.labels(mailbox.provider, outcome).inc()

    def _needs_reauth(self, mailbox: MailboxKey, reason: str) -> None:
        log.error("mailbox %s/%s needs re-authentication: %s", mailbox.organisation_cvr, mailbox.name, reason)
        with self.rt.store.transaction() as session:
            row = session.get(Mailbox, mailbox.id)
            if row is not None:
                row.status = MailboxStatus.NEEDS_REAUTH
                row.last_error = reason
        self.rt.metrics.mailboxes_needing_reauth.labels(mailbox.provider).inc()
        self.rt.connectors.pop(mailbox.id, None)

    async def route(self) -> int:
        routed = 0
        while not self._stop.is_set():
            done = await asyncio.to_thread(route_next, self.rt.store, self.rt.decider, self.rt.metrics)
            if not done:
                break
            routed += 1
        return routed

    # -- running ------------------------------------------------------------------------------

    async def _supervised(self, stage: str, job: Callable[[], Awaitable[object]]) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.rt.metrics.stage_errors.labels(stage).inc()
            log.exception("%s job failed; it runs again at its next turn", stage)

    async def run_once(self) -> None:
        """Every stage until there is no more work (cron mode)."""
        for mailbox in self.rt.mailboxes:
            await self._supervised("collect", lambda m=mailbox: self.collect(m))
        await self._supervised("route", self.route)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.rt.metrics.up.set(1)
        server_task = self._start_http()
        self._schedule()
        self._ready = True
        log.info("postbud running: %d mailboxes", len(self.rt.mailboxes))
        await self._stop.wait()
        log.info("shutting down: finishing in-flight work")
        assert self._scheduler is not None
        self._scheduler.shutdown(wait=False)
        await self._drain()
        if self._server is not None:
            self._server.should_exit = True
        if server_task is not None:
            await server_task
        self.rt.metrics.up.set(0)

    def stop(self) -> None:
        self._stop.set()

    async def _drain(self) -> None:
        """Wait (bounded) for jobs already running; their work is persisted step by step anyway."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and t.get_name().startswith("postbud-job")]
        if pending:
            await asyncio.wait(pending, timeout=30)

    def _schedule(self) -> None:
        sched = AsyncIOScheduler(timezone=timezone.utc)
        s = self.config.schedule
        now = datetime.now(timezone.utc)
        intervals = {
            (org.cvr, mb.name): mb.poll_interval_seconds or s.poll_interval_seconds
            for org in self.config.organisations
            for mb in org.mailboxes
        }
        for mailbox in self.rt.mailboxes:
            interval = intervals.get((mailbox.organisation_cvr, mailbox.name), s.poll_interval_seconds)
            sched.add_job(
                self._job, "interval", args=["collect", lambda m=mailbox: self.collect(m)],
                seconds=interval, jitter=s.jitter_seconds or None,
                id=f"collect:{mailbox.id}", max_instances=1, coalesce=True,
                next_run_time=now + timedelta(seconds=random.uniform(0, min(s.jitter_seconds, interval))),
            )
        sched.add_job(self._job, "interval", args=["route", self.route], seconds=s.route_interval_seconds,
                      id="route", max_instances=1, coalesce=True, next_run_time=now)
        sched.start()
        self._scheduler = sched

    async def _job(self, stage: str, job: Callable[[], Awaitable[object]]) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name(f"postbud-job-{stage}")
        await self._supervised(stage, job)

    def _start_http(self) -> asyncio.Task[None] | None:
        if not self.config.http.enabled:
            return None
        host, port = self.config.http.host_port
        app = make_app(self.rt.metrics, self.rt.store, lambda: self._ready)
        self._server, task = serve_task(app, host, port, name="postbud-http")
        return task
