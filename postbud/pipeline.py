"""`run --once` with its stages side by side: routing takes each group the collector commits, delivery each routed group.

Work passes from stage to stage through the database only, as in `postbud run`: a stage takes what
the one before committed (with its trace events), so a crash anywhere leaves a state the next start
resumes. What passes in memory is a wake-up, never a letter.

The run ends as the rounds it replaces did: after a collect pass such that, from its start on, no
stage moved a letter, and routing and delivery each then found nothing in a step begun after that
pass ended — a round that moved nothing, whatever order the stages ran in.

Overlapping the stages was tried before and was slower on a loaded 2-core machine (92 s instead of
59 s for 2,000 letters). Measured again (bench.e2e --letters 2000, load 8-15, stages overlapped with
the loop's one pool of threads): 12-14 ms CPU a letter instead of 10-12 one stage after another,
the event loop late by 36-47 ms at p95 instead of 11-26, 15-45 s a run spent waiting for SQLite's
write lock instead of under 0.3 s, the collect pass three to four times as long. Why:

- the collector's path is many small blocking calls one after another (read a file, store a group,
  delete each file), and each waited in the one thread pool's queue behind routing's groups and
  delivery's encryption and group commits, its parse workers idle meanwhile;
- every hop to a thread and back waits for the interpreter lock, up to the switch interval (5 ms)
  behind each thread busy in Python: 2 ms a hop with two such threads, against 0.06 ms alone;
- a thread holding the write lock also waits for its turn at the interpreter lock, so the lock was
  held three times as long, and everyone else waited on it;
- routing, looking every 0.1 s, took groups of a few letters: 370 transactions instead of 24.

So routing's and delivery's blocking calls go to BEHIND_THREADS threads of their own (one: two were
slower), the collector keeps the loop's others (StagedExecutor), the interpreter switches threads
every SWITCH_SECONDS, and routing looks for new groups every LOOK_SECONDS. On a machine without an
idle core, overlapping gains nothing (the same CPU a letter, shared the same way); it is where a
core would idle, one stage after another, that it pays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[int]]
P = ParamSpec("P")
T = TypeVar("T")
# The stage whose task made a blocking call (asyncio.to_thread submits it from the task's context).
STAGE: ContextVar[str] = ContextVar("postbud_stage", default="collect")
BEHIND = frozenset({"route", "deliver"})
BEHIND_THREADS = 1
# How long a thread keeps the interpreter lock while another waits for it (Python's default: 5 ms).
SWITCH_SECONDS = 0.001


class StagedExecutor(ThreadPoolExecutor):
    """The loop's threads for blocking calls, the collector's apart from routing's and delivery's.

    The collector's calls are many and small, one after another on its way (read a file, store a
    group, delete the files), and its parse workers wait while one of them queues: they get `threads`
    threads of their own. Routing's and delivery's calls are fewer and longer (a group decided, a chunk
    encrypted, a group commit) and run on at most `behind` threads, so that they never take every
    thread, nor more than a share of the interpreter lock, from the collector.
    """

    def __init__(self, threads: int, behind: int) -> None:
        super().__init__(max_workers=threads, thread_name_prefix="postbud")
        self._behind = ThreadPoolExecutor(max_workers=behind, thread_name_prefix="postbud-behind")

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if STAGE.get() in BEHIND:
            return self._behind.submit(fn, *args, **kwargs)
        return super().submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._behind.shutdown(wait, cancel_futures=cancel_futures)
        super().shutdown(wait, cancel_futures=cancel_futures)

# How often routing looks for collected letters while a collect pass is under way. Every 0.1 s it
# took groups of a few letters (370 transactions for 2,000 letters instead of 24 one stage after
# another), each holding the write lock the collector waits for; every 0.5 s about 110.
LOOK_SECONDS = 0.5


@dataclass(frozen=True)
class Stages:
    """The stages as run --once drives them; each returns how many letters it moved on (0 on failure).

    `collect`: one pass over every mailbox; `route`: collected letters, a group or all there are;
    `deliver`: due outbox rows, likewise."""

    collect: Step
    route: Step
    deliver: Step


class Pipeline:
    """One run of the three stages side by side until there is no work left (see the module docstring)."""

    def __init__(self, stages: Stages, stop: asyncio.Event, *, look_seconds: float = LOOK_SECONDS) -> None:
        self.stages = stages
        self.stop = stop
        self.look_seconds = look_seconds
        self.moved = 0  # letters moved on by any stage so far
        self.passes = 0  # collect passes ended so far
        self.collecting = False
        self.clean = {"route": -1, "deliver": -1}  # passes ended before the stage's last step that found nothing
        self._changed = asyncio.Event()  # anything moved, a pass ended or a stage found nothing
        self._wake = {"route": asyncio.Event(), "deliver": asyncio.Event()}
        self._done = False

    async def run(self) -> int:
        """How many letters the stages moved on."""
        collector = asyncio.create_task(self._collector(), name="postbud-once-collect")
        stages = [asyncio.create_task(self._stage("route", self.stages.route, "deliver"), name="postbud-once-route"),
                  asyncio.create_task(self._stage("deliver", self.stages.deliver, None), name="postbud-once-deliver")]
        stopping = asyncio.create_task(self._on_stop())
        try:
            # the collector decides when the run is over; a stage that ends before it failed
            await asyncio.wait([collector, *stages], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._done = True
            self._wake_all()
            stopping.cancel()
            if not collector.done() and not self.stop.is_set():
                collector.cancel()  # a stage failed: what it raised is the run's outcome
            outcomes = await asyncio.gather(collector, *stages, stopping, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return self.moved

    def _wake_all(self) -> None:
        self._changed.set()
        for event in self._wake.values():
            event.set()

    async def _on_stop(self) -> None:
        await self.stop.wait()
        self._wake_all()

    def _moved(self, n: int) -> None:
        if n:
            self.moved += n
            self._changed.set()

    async def _collector(self) -> None:
        while not self.stop.is_set():
            mark = self.moved
            self.collecting = True
            try:
                collected = await self.stages.collect()
            finally:
                self.collecting = False
                self.passes += 1
                self._wake_all()  # routing and delivery look once more, whatever they found before
            self._moved(collected)
            if collected:
                continue  # more may be waiting: a poll takes a bounded number
            passed = self.passes
            # Nothing new here: once routing and delivery caught up with this pass, the run is over
            # unless they moved letters meanwhile (a mailbox that lets go after delivery, letters that
            # arrived since: one pass more).
            while not self.stop.is_set() and min(self.clean.values()) < passed:
                self._changed.clear()
                await self._changed.wait()
            if self.moved == mark:
                return

    async def _stage(self, name: str, step: Step, downstream: str | None) -> None:
        STAGE.set(name)  # this task's context: its blocking calls go to the threads behind
        wake = self._wake[name]
        while not self._done and not self.stop.is_set():
            passes = self.passes
            wake.clear()  # a wake-up from now on means: look again after this step
            n = await step()
            if n:
                self._moved(n)
                if downstream is not None:
                    self._wake[downstream].set()
                continue
            self.clean[name] = passes  # nothing to do, in a step begun after `passes` passes ended
            self._changed.set()
            # Groups land while a pass runs, unannounced (and routing may take several before it
            # returns): look again after a while.
            timeout = self.look_seconds if self.collecting else None
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                pass
