"""`postbud run`: one asyncio loop with scheduled collect / route / housekeeping jobs and an HTTP listener.

Every scheduled job runs behind one supervised boundary (`_supervised`): anything unexpected is
counted and logged without stopping the other jobs. What a failed poll means for its mailbox
(re-authentication, back-off, circuit breaker) is the collector's dispatcher's decision.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING


def utcnow() -> datetime:
    return datetime.now(timezone.utc)

from delivery.channels import Channel, build_channels
from delivery.digest import queue_digests
from delivery.worker import deliver_pending
from core.config import Config
from core.configfile import ConfigError
from core.storage import daily_counts
from postbud.configuration import load_config
from postbud.cron_training import LastTraining, newest_hand_placement, remember_training, why_train
from postbud.pipeline import BEHIND_THREADS, SWITCH_SECONDS, Pipeline, StagedExecutor, Stages
from postbud.preflight import check_config
from postbud.runtime import Runtime
from postbud.shared_work import others_at_work
from delivery.notices import send_notices
from delivery.onboarding_run import onboarding_pass
from postbud.retention import run_housekeeping
from router.realised import review
from router.reoffer import reoffer_held
from router.stage import route_batch

if TYPE_CHECKING:  # imported where the daemon (not run --once) starts them: the scheduler, the listener
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from postbud.http import EmbeddedServer

log = logging.getLogger(__name__)

# Blocking work (database, files) runs in threads. More than the default (cores + 4) keeps polls
# from queueing behind a few slow calls; not many more, since each thread may get its own malloc
# arena (glibc), which showed as +130 MB resident with 32 threads at 1,000 mailboxes.
EXECUTOR_THREADS = 8
# SIGTERM ends the process within this many seconds whatever is stuck (the systemd unit's
# TimeoutStopSec is 60): in-flight work gets up to 15 s twice, then the exit is forced.
STOP_TIMEOUT_SECONDS = 45.0
OTHERS_POLL_SECONDS = 0.2  # run --once, idle while other instances still have letters in hand
_GRACE_SECONDS = 15.0
# The roll-up's changes are folded this often: the statistics read a few settled rows per day and
# the changes of at most a minute (core/storage/daily_counts.py).
SETTLE_SECONDS = 60.0
# How often the daily digests are looked for: a digest goes out within this long of its time.
DIGEST_CHECK_SECONDS = 60.0


class Daemon:
    def __init__(self, runtime: Runtime, *, clock: Callable[[], datetime] = utcnow, force_exit: bool = False) -> None:
        self.rt = runtime
        # Only the `postbud run` process arms the forced exit: in a test it would end the test run.
        self.force_exit = force_exit
        self.clock = clock  # the housekeeping's and notices' "now"; tests make time pass with it
        self.config: Config = runtime.config
        self._stop = asyncio.Event()
        self._ready = False
        self._scheduler: AsyncIOScheduler | None = None
        self._server: EmbeddedServer | None = None
        self._executor: StagedExecutor | None = None  # run --once's threads, made at its first round

    # -- stages -------------------------------------------------------------------------------

    async def route(self) -> int:
        await asyncio.to_thread(self.rt.refresh_recipients)  # hot reload, refused if invalid
        if self.rt.rule_source is not None:
            await asyncio.to_thread(self.rt.rule_source.refresh)  # hot reload, refused if invalid
        routed = 0
        while not self._stop.is_set():
            # one transaction per group (schedule.batch_size): one commit instead of one per letter
            done = await asyncio.to_thread(route_batch, self.rt.store, self.rt.decider, self.rt.metrics,
                                           directory=self.rt.recipients, channels=self.config.delivery.channels,
                                           limit=self.config.schedule.batch_size)
            if not done:
                break
            routed += done
        return routed

    async def deliver(self, channels: Mapping[str, Channel] | None = None) -> int:
        """Send what the outbox holds that is due, until nothing is (or the daemon stops).
        `channels`: the caller's, kept open across calls (run --once); else this pass's own."""
        sent = 0
        directory = self.rt.recipients
        # One set of channels for the whole pass, not one per batch: each new one cost a TLS context
        # (the system trust store loaded again) and a new SMTP connection with its handshake.
        own = self._channels() if channels is None else channels
        try:
            while not self._stop.is_set():
                handled = await deliver_pending(self.rt.store, self.config, directory, self.rt.metrics,
                                                owner=self.rt.instance, limit=self.config.delivery.batch_size,
                                                pauses=self.rt.pauses, channels=own)
                if not handled:
                    break
                sent += handled
        finally:
            if channels is None:
                for channel in own.values():
                    await channel.aclose()
        return sent

    def _channels(self) -> Mapping[str, Channel]:
        return build_channels(self.config.delivery)

    async def train(self) -> int:
        """Retrain each organisation's model whose confirmed placements changed (in a worker thread);
        a new model gets the held letters offered again (returns how many it routed); a model whose
        corrections show it below its target is paused."""
        models = self.rt.models
        if models is None:
            return 0
        reoffered, began = 0, time.time()
        hand = await asyncio.to_thread(newest_hand_placement, self.rt.store)  # before: later ones count next time
        for org in self.config.organisations:
            outcome = await asyncio.to_thread(models.train, org.cvr)
            if outcome.trained:
                self.rt.metrics.model_trainings.labels("trained").inc()
                reoffered += await asyncio.to_thread(reoffer_held, self.rt.store, self.rt.decider, org.cvr,
                                                     directory=self.rt.recipients,
                                                     channels=self.config.delivery.channels)
            else:
                self.rt.metrics.model_trainings.labels("skipped").inc()
            model = models.get(org.cvr)
            paused = await asyncio.to_thread(review, self.rt.store, self.rt.notifier, org.cvr,
                                             model.fingerprint[:12] if model else None,
                                             self.config.model.target_precision)
            if paused:
                models.state(org.cvr, fresh=True)
        await asyncio.to_thread(remember_training, self.config.model.folder, LastTraining(began, hand))
        return reoffered

    async def train_if_due(self) -> int:
        """`run --once`'s training: only when `postbud.cron_training` says why; else not even the
        model is read."""
        if self.rt.models is None:
            return 0
        reason = await asyncio.to_thread(why_train, self.rt.store, self.config, time.time())
        if reason is None:
            return 0
        log.info("training the models: %s", reason)
        return await self.train()

    async def housekeeping(self) -> None:
        """The held letters' schedule, and (once a day, whichever instance comes first) the retention
        purge; then the notices they queued go out, and the onboarding checklist's test letters and
        reminders."""
        await asyncio.to_thread(run_housekeeping, self.rt.store, self.config, self.rt.metrics, self.clock())
        await self.notify()
        await onboarding_pass(self.rt.store, self.config, self.rt.recipients, now=self.clock())

    async def settle_statistics(self) -> int:
        """Fold the statistics' roll-up changes into one row per organisation, day and measure."""
        return await asyncio.to_thread(daily_counts.settle, self.rt.store)

    async def digest(self) -> int:
        """Queue the recipients' daily digests that are due (each once, whichever instance comes first)
        and send them with the other notices."""
        queued = await asyncio.to_thread(queue_digests, self.rt.store, self.config, self.rt.recipients,
                                         now=self.clock())
        if queued:
            await self.notify()
        return queued

    async def notify(self) -> int:
        """E-mail the queued notices that are due (each once; failures back off)."""
        run = await send_notices(self.rt.store, self.config, self.rt.metrics, owner=self.rt.instance,
                                 clock=self.clock)
        return run.sent

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
        """Every stage until there is no more work (cron mode).

        Each stage takes a bounded amount per pass (a folder poll at most `max_files_per_poll` files, a
        poll its request budget), so the stages go round until a whole round moves no letter on: the
        round after the last delivery also lets mailboxes that acknowledge after delivery let go.
        """
        channels = self._channels()  # one SMTP connection for the whole run
        try:
            for _ in range(2):  # a second time only when a new model re-offered held letters
                while not self._stop.is_set():
                    await self._round(channels)
                    # idle, but instances beside us (PostgreSQL) may still be collecting or sending:
                    # what they commit is ours to route and deliver too
                    if not await asyncio.to_thread(others_at_work, self.rt.store, self.rt.instance, utcnow()):
                        break
                    await asyncio.sleep(OTHERS_POLL_SECONDS)
                # Cron installations learn too, when due (postbud/cron_training.py): a new model
                # re-offers what it may now route alone.
                if not await self._counted("train", self.train_if_due):
                    break
            await self._supervised("digest", self.digest)
            await self._supervised("housekeeping", self.housekeeping)
            await self._supervised("statistics", self.settle_statistics)
        finally:
            for channel in channels.values():
                await channel.aclose()
            await self.rt.dispatcher.shutdown()

    async def _round(self, channels: Mapping[str, Channel]) -> int:
        """Collect, route and deliver side by side until no stage has work and none will get any
        (postbud/pipeline.py, which says why it takes the threads and switch interval it does); how
        many letters moved on."""
        stages = Stages(collect=lambda: self._counted("collect", self.rt.dispatcher.run_all_once),
                        route=lambda: self._counted("route", self.route),
                        deliver=lambda: self._counted("deliver", lambda: self.deliver(channels)))
        if self._executor is None:
            self._executor = StagedExecutor(EXECUTOR_THREADS, BEHIND_THREADS)
            asyncio.get_running_loop().set_default_executor(self._executor)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_SECONDS)
        try:
            return await Pipeline(stages, self._stop).run()
        finally:
            sys.setswitchinterval(switch)

    async def _counted(self, stage: str, job: Callable[[], Awaitable[int]]) -> int:
        """Run a stage under supervision; how many letters it moved on (0 when it failed)."""
        moved = 0

        async def counting() -> None:
            nonlocal moved
            moved = await job()

        await self._supervised(stage, counting)
        return moved

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="postbud"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        self.rt.metrics.up.set(1)
        server_task = self._start_http()
        self._schedule()
        collector = asyncio.create_task(self.rt.dispatcher.run(self._stop), name="postbud-collector")
        self._ready = True
        log.info("postbud running: %d mailboxes", len(self.rt.dispatcher.mailboxes))
        await self._stop.wait()
        log.info("shutting down: finishing in-flight work")
        if self.force_exit:
            _force_exit_after(STOP_TIMEOUT_SECONDS)
        assert self._scheduler is not None
        self._scheduler.shutdown(wait=False)
        await collector
        await self._drain()
        await self.rt.dispatcher.shutdown(timeout=_GRACE_SECONDS)
        if self._server is not None:
            self._server.should_exit = True
        if server_task is not None:
            await server_task
        self.rt.metrics.up.set(0)

    def stop(self) -> None:
        self._stop.set()

    async def reload(self) -> None:
        """SIGHUP: read the config file again; a bad file is refused and the running config stays."""
        await asyncio.to_thread(self.rt.store.vault.refresh)  # a keyring rotated meanwhile
        path = self.config.path
        if path is None:
            return
        try:
            config = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            log.error("configuration reload refused; keeping the running one:\n%s", exc)
            return
        fatal = [p for p in await asyncio.to_thread(check_config, config) if p.fatal]
        if fatal:
            log.error("configuration reload refused; keeping the running one:\n%s",
                      "\n".join(str(p) for p in fatal))
            return
        await self.rt.reconfigure(config)
        self.config = config
        log.info("configuration reloaded: %d mailboxes", len(self.rt.dispatcher.mailboxes))

    async def _drain(self) -> None:
        """Wait (bounded) for jobs already running; their work is persisted step by step anyway."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and t.get_name().startswith("postbud-job")]
        if pending:
            await asyncio.wait(pending, timeout=_GRACE_SECONDS)

    def _schedule(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        sched = AsyncIOScheduler(timezone=timezone.utc)
        s = self.config.schedule
        now = datetime.now(timezone.utc)
        jobs: list[tuple[str, Callable[[], Awaitable[object]], float]] = [
            ("route", self.route, s.route_interval_seconds),
            ("deliver", self.deliver, s.deliver_interval_seconds),
            ("notify", self.notify, s.deliver_interval_seconds),
            ("housekeeping", self.housekeeping, s.housekeeping_interval_seconds),
            ("statistics", self.settle_statistics, SETTLE_SECONDS),
            ("digest", self.digest, DIGEST_CHECK_SECONDS),
        ]
        if self.rt.models is not None:
            jobs.append(("train", self.train, self.config.model.train_interval_seconds))
        for stage, job, seconds in jobs:
            sched.add_job(self._job, "interval", args=[stage, job], seconds=seconds, id=stage,
                          max_instances=1, coalesce=True, next_run_time=now)
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
        from postbud.http import make_app, serve_task

        host, port = self.config.http.host_port
        routes = self.rt.http_routes()
        if self.config.console.enabled:
            # Mounted here, not by the runtime: the console reads status, which builds on the runtime.
            from postbud.console.app import console_mount

            routes.append(console_mount(self.rt.store, lambda: self.rt.config, lambda: self.rt.recipients))
        app = make_app(self.rt.metrics, self.rt.store, lambda: self._ready, routes)
        self._server, task = serve_task(app, host, port, name="postbud-http")
        return task


def _force_exit_after(seconds: float) -> None:
    """A last resort no stuck thread can block: everything is persisted step by step, so exiting loses
    nothing; leases expire and the next start resumes."""

    def force() -> None:
        log.critical("shutdown took longer than %.0f s; exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()
