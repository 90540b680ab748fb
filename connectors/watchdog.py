"""Runs each letter's parse and text extraction in a reusable worker process under one time and memory budget.

A thread cannot be stopped, a process can: every parse of provider data goes through `run`, which
hands the call to one of a few long-lived worker processes (started once, reused for every letter,
so the cost per letter is two pickles). A worker has an address-space limit (RLIMIT_AS); a call that
overruns the time budget gets its worker killed and replaced. Either way the letter fails with
`BudgetExceeded`, a `PermanentError`, and is quarantined; the next letter goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue
import resource
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from connectors.base import PermanentError, TransientError
from core.metrics import IN_FLIGHT

log = logging.getLogger(__name__)

T = TypeVar("T")
_PRELOAD = ["connectors.files", "connectors.watchdog", "pypdfium2.raw"]
# A worker whose peak resident memory passed this share of the budget is replaced after its letter,
# so one big letter does not keep a big process around.
_RECYCLE_SHARE = 0.5
# Text extraction gets half the letter's time: slow PDFs then yield the text read so far instead of
# costing the whole letter.
_TEXT_SHARE = 0.5


@dataclass(frozen=True)
class Budget:
    """What one letter may use: wall-clock seconds and address space, for parse and text extraction."""

    seconds: float = 30.0
    memory_bytes: int = 1024 * 1024 * 1024
    workers: int = 2


class BudgetExceeded(PermanentError):
    """The letter overran its time or memory budget, or crashed its parser: quarantine it."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # time, memory or crash: a small fixed set, used as a metric label


class _Closed(TransientError):
    """The pool closed (the daemon stops) while the letter waited: try again at the next start."""


# -- the worker process ---------------------------------------------------------------------------


def _serve(conn: Connection, memory_bytes: int, text_seconds: float, in_pdfium: Any) -> None:
    """Worker main loop: one call at a time; replies (outcome, payload, retire)."""
    # The parent decides when workers end; Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ValueError, OSError) as error:  # a hard limit already lower: keep that one
        log.warning("parse worker runs without its memory limit: %s", error)
    # A worker that crashes (PDFium aborts when out of memory) leaves no core file: it would hold
    # letters' plaintext on disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from connectors import pdftext, text
    from core.logs import install_redaction

    install_redaction()  # the worker logs to its own stderr: the same redaction as the daemon
    pdftext.watch_crashes(in_pdfium)

    while True:
        try:
            fn, args, pdfium = conn.recv()
        except (EOFError, OSError):
            return
        retire = False
        try:
            with text.letter_deadline(text_seconds), contextlib.nullcontext() if pdfium else pdftext.pypdf_only():
                reply: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            reply, retire = ("memory", ""), True
        except PermanentError as error:
            reply = ("permanent", str(error))
        except RecursionError as error:
            reply = ("permanent", f"nested too deeply for the parser ({error})")
        except Exception as error:  # noqa: BLE001 - any parser failure is this one letter's problem
            reply = ("permanent", f"the parser failed: {type(error).__name__}: {error}"[:500])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        retire = retire or peak > memory_bytes * _RECYCLE_SHARE or text.stragglers() > 0
        try:
            conn.send((*reply, retire))
        except Exception as error:  # noqa: BLE001 - e.g. a result too deep or too big to pickle
            conn.send(("permanent", f"the parsed letter could not be returned: {type(error).__name__}", True))
        if retire:
            return


class _PdfiumCrashed:
    """The worker died while PDFium read a PDF (it aborts when out of memory): read the letter again with pypdf."""

    def __init__(self, how: str) -> None:
        self.how = how


class _Worker:
    def __init__(self, context: Any, budget: Budget) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.in_pdfium = context.RawValue("b", 0)  # set by the worker while PDFium runs
        self.process = context.Process(
            target=_serve, args=(child, budget.memory_bytes, budget.seconds * _TEXT_SHARE, self.in_pdfium),
            name="postbud-parse", daemon=True,
        )
        self.process.start()
        child.close()

    def signal_kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError):
            pass  # already reaped, or never started

    def kill(self) -> None:
        """Kill, reap and close: only from the thread that drives this worker."""
        self.signal_kill()
        self.process.join(5)
        self.conn.close()


# -- the pool, in the daemon --------------------------------------------------------------------


class _Load:
    """A call's arguments to be made by the driver thread, just before the call (`ParsePool.run_loaded`)."""

    def __init__(self, load: Callable[[], tuple[Any, ...]]) -> None:
        self.load = load


_Item = tuple[Callable[..., Any], "tuple[Any, ...] | _Load", asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class ParsePool:
    """`budget.workers` worker processes, each driven by one daemon thread of this pool."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        # forkserver, not fork: the daemon has threads, and a forked copy of a held lock never opens.
        # Like spawn, a new worker imports the program's main module by path: every postbud entry
        # point (the console script, `python -m postbud`, pytest) keeps its work behind a main guard.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker; raises `BudgetExceeded` on overrun and `PermanentError` for any
        failure inside `fn` (its reason as text). `fn` and `args` must pickle (module-level functions)."""
        return await self._run(fn, args)

    async def run_loaded(self, load: Callable[[], tuple[Any, ...]], fn: Callable[..., T]) -> T:
        """`run(fn, *load())`, with `load` called on the worker's driver thread right before: reading a
        letter's file there spares the event loop a thread hop per letter. What `load` raises reaches
        the caller as raised, and no worker is used then. `load` must be quick (a local read): the
        letter's time budget starts after it."""
        return await self._run(fn, _Load(load))

    async def _run(self, fn: Callable[..., T], args: tuple[Any, ...] | _Load) -> T:
        if self._closed:
            raise _Closed("the parser pool is closed")
        self._start_threads()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((fn, args, loop, future))
        result: T = await future
        return result

    def warm_up(self) -> None:
        """Start the workers now instead of at the first letter: the fork server's imports then run
        beside the daemon's own start-up (on another core) instead of delaying the first parse."""
        if not self._closed:
            self._start_threads()

    def close(self) -> None:
        """Kill every worker at once (they hold no state); waiting letters fail as transient.

        Only the signal is sent from here: each worker's pipe belongs to its driver thread, which sees
        the end of file and closes it (closing it from this thread could hand its descriptor number
        to a new pipe while the driver still reads it).
        """
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
        for _ in self._threads:
            self._queue.put(None)
        for worker in workers:
            worker.signal_kill()

    def _start_threads(self) -> None:
        with self._lock:
            while len(self._threads) < self.budget.workers:
                thread = threading.Thread(target=self._drive, name="postbud-parse-driver", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context, self.budget)
        with self._lock:
            if self._closed:
                worker.kill()
                raise _Closed("the parser pool is closed")
            self._workers.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.kill()

    def _drive(self) -> None:
        worker: _Worker | None = None
        try:  # at once, not at this thread's first letter (see `warm_up`)
            worker = self._spawn()
        except Exception as error:  # noqa: BLE001 - tried again for the first letter, which then fails
            log.debug("parse worker not started ahead: %s", error)
        while (item := self._queue.get()) is not None:
            fn, args, loop, future = item
            if future.cancelled():
                continue  # its poll was cancelled (shutdown, lost lease) while it waited
            if isinstance(args, _Load):
                try:
                    args = args.load()
                except Exception as error:  # noqa: BLE001 - the caller's to handle, as if it had loaded
                    _settle_threadsafe(loop, future, error)
                    continue
            try:
                if worker is not None and not worker.process.is_alive():
                    self._retire(worker)
                    worker = None
                if worker is None:
                    worker = self._spawn()
                with IN_FLIGHT.track("parse"):
                    outcome, retire = self._call(worker, fn, args, pdfium=True)
                    if isinstance(outcome, _PdfiumCrashed):
                        log.warning("the PDF reader crashed its parse worker (%s); the letter is read again "
                                    "with pypdf", outcome.how)
                        self._retire(worker)
                        worker = None
                        worker = self._spawn()
                        outcome, retire = self._call(worker, fn, args, pdfium=False)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting task, never lost
                outcome, retire = error, True
            if retire and worker is not None:
                self._retire(worker)
                worker = None
            if isinstance(outcome, BudgetExceeded):
                IN_FLIGHT.count_overrun(outcome.reason)
            _settle_threadsafe(loop, future, outcome)
        if worker is not None:
            self._retire(worker)

    def _call(self, worker: _Worker, fn: Callable[..., Any], args: tuple[Any, ...], *,
              pdfium: bool) -> tuple[Any, bool]:
        seconds = self.budget.seconds
        try:
            worker.conn.send((fn, args, pdfium))
            if not worker.conn.poll(seconds):
                log.warning("a letter overran its parse budget of %.0f s; its worker is replaced", seconds)
                return BudgetExceeded(f"parsing took longer than the budget of {seconds:g} s",
                                      reason="time"), True
            kind, payload, retire = worker.conn.recv()
        except (EOFError, OSError):
            if self._closed:
                return _Closed("the parser pool closed while the letter was parsed"), True
            worker.process.join(1)
            code = worker.process.exitcode
            if pdfium and worker.in_pdfium.value:
                return _PdfiumCrashed(_describe(code)), True
            return BudgetExceeded(f"the parser process died ({_describe(code)}) on this letter",
                                  reason="crash"), True
        if kind == "ok":
            return payload, retire
        if kind == "memory":
            mb = self.budget.memory_bytes // (1024 * 1024)
            return BudgetExceeded(f"parsing needed more than the memory budget of {mb} MB", reason="memory"), True
        return PermanentError(str(payload)), retire


def _describe(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _settle_threadsafe(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], outcome: Any) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, outcome)
    except RuntimeError:
        pass  # the caller's loop is gone: nobody waits for this letter any more


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


# -- the process-wide pool --------------------------------------------------------------------------

_pool: ParsePool | None = None
_budget = Budget()
_pool_lock = threading.Lock()


def configure(budget: Budget) -> None:
    """Use `budget` from now on (the daemon calls this at start and on reload); idle workers are replaced."""
    global _budget, _pool
    with _pool_lock:
        if budget == _budget and _pool is not None:
            return
        _budget, old, _pool = budget, _pool, None
    if old is not None:
        old.close()


def pool() -> ParsePool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ParsePool(_budget)
        return _pool


async def run(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` under the letter budget, in the process-wide pool (see `ParsePool.run`)."""
    return await pool().run(fn, *args)


async def run_loaded(load: Callable[[], tuple[Any, ...]], fn: Callable[..., T]) -> T:
    """`fn(*load())` in the process-wide pool, `load` on its driver thread (see `ParsePool.run_loaded`)."""
    return await pool().run_loaded(load, fn)


def warm_up() -> None:
    """Start the process-wide pool's workers ahead of the first letter (the daemon, at start)."""
    pool().warm_up()


def shutdown() -> None:
    """Kill the workers (the daemon's last step; also safe when none ever started)."""
    global _pool
    with _pool_lock:
        old, _pool = _pool, None
    if old is not None:
        old.close()


def worker_pids() -> list[int]:
    """The live workers' process ids (for tests and measurements)."""
    current = _pool
    if current is None:
        return []
    with current._lock:
        return [w.process.pid for w in current._workers if w.process.pid is not None and w.process.is_alive()]

