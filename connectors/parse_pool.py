"""The parse pool: worker processes driven by the event loop that calls `ParsePool.run` (see `connectors.watchdog`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import struct
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from connectors.errors import PermanentError, TransientError
from connectors.parse_worker import Budget, BudgetExceeded, Closed, Worker
from core.metrics import IN_FLIGHT

log = logging.getLogger(__name__)

T = TypeVar("T")
_PRELOAD = ["connectors.files", "connectors.dropfiles", "connectors.parse_worker", "pypdfium2.raw"]
_HEADER = struct.Struct("!i")  # multiprocessing.Connection's framing, which the worker reads and writes
_LONG = struct.Struct("!Q")
_READ = 1 << 18


class _Call:
    __slots__ = ("fn", "args", "future", "pdfium")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.fn, self.args, self.future = fn, args, future
        self.pdfium = True  # False when a crash in PDFium sends the letter round again, read with pypdf


class _Slot:
    """One worker as the loop drives it: its call, the rest of the request not yet written, the reply so far."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.fd = worker.conn.fileno()
        os.set_blocking(self.fd, False)
        self.call: _Call | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.running: contextlib.AbstractContextManager[None] | None = None  # IN_FLIGHT's record of the call
        self.outbox: memoryview | None = None
        self.inbox = bytearray()


class ParsePool:
    """`budget.workers` worker processes, driven by the event loop that calls `run`."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        # forkserver, not fork: the daemon has threads, and a forked copy of a held lock never opens.
        # Like spawn, a new worker imports the program's main module by path: every postbud entry
        # point (the console script, `python -m postbud`, pytest) keeps its work behind a main guard.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._lock = threading.Lock()  # what starting threads and `close` share with the loop
        self._workers: set[Worker] = set()  # every live worker
        self._ready: list[Worker] = []  # started before a loop drove the pool
        self._starting = 0
        self._warmed = self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: list[_Slot] = []
        self._idle: list[_Slot] = []
        self._waiting: deque[_Call] = deque()
        self._view = memoryview(bytearray(_READ))
        self._crashes: set[asyncio.Task[None]] = set()  # kept: the loop holds its tasks only weakly

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker; raises `BudgetExceeded` on overrun, `PermanentError` for any failure
        inside `fn` (its reason as text, with the raw bytes a `PermanentError` carried) and
        `TransientError` for a `TransientError` inside. `fn` and `args` must pickle (module-level functions)."""
        if self._closed:
            raise Closed("the parser pool is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            driving = self._loop
            if driving is not None and driving.is_running():  # another thread's loop drives the workers
                outcome: T = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.run(fn, *args), driving))
                return outcome
            self._bind(loop)
        call = _Call(fn, args, loop.create_future())
        self._waiting.append(call)
        self._dispatch()
        result: T = await call.future
        return result

    def warm_up(self) -> None:
        """Start the workers now instead of at the first letter: the fork server's imports then run
        beside the daemon's own start-up (on another core) instead of delaying the first parse."""
        with self._lock:
            if self._closed or self._warmed:
                return
            self._warmed = True
            self._starting += self.budget.workers
        for _ in range(self.budget.workers):
            threading.Thread(target=self._start, name="postbud-parse-start", daemon=True).start()

    def close(self) -> None:
        """Kill every worker at once (they hold no state); waiting letters fail as transient."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._ready.clear()
        for worker in workers:
            worker.signal_kill()
        loop = self._loop
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is not None and loop.is_running() and loop is not here:
            try:
                loop.call_soon_threadsafe(self._abandon, workers)
                return
            except RuntimeError:
                pass  # closed meanwhile
        self._abandon(workers)

    # -- on the loop's thread ----------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drive the workers from `loop` (the one before is not running: its calls were abandoned)."""
        old, self._loop = self._loop, loop
        for slot in list(self._slots):
            if slot.call is not None or slot.inbox or slot.outbox is not None:
                self._retire(slot, loop=old)  # busy for a loop that went away: its reply belongs to nobody
            else:
                if old is not None and not old.is_closed():
                    old.remove_reader(slot.fd)
                loop.add_reader(slot.fd, self._readable, slot)
        self._waiting.clear()
        with self._lock:
            ready, self._ready = self._ready, []
        for worker in ready:
            self._attach(worker)

    def _attach(self, worker: Worker) -> None:
        assert self._loop is not None
        slot = _Slot(worker)
        self._slots.append(slot)
        self._idle.append(slot)
        self._loop.add_reader(slot.fd, self._readable, slot)

    def _dispatch(self) -> None:
        while self._waiting and self._idle:
            call = self._waiting.popleft()
            if not call.future.done():  # not cancelled (shutdown, lost lease) while it waited
                self._send(self._idle.pop(), call)
        missing = min(len(self._waiting), self.budget.workers - len(self._slots) - self._starting)
        for _ in range(missing):
            with self._lock:
                self._starting += 1
            threading.Thread(target=self._start, name="postbud-parse-start", daemon=True).start()

    def _send(self, slot: _Slot, call: _Call) -> None:
        try:
            data = pickle.dumps((call.fn, call.args, call.pdfium), pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - the caller's to handle; nothing was sent
            self._idle.append(slot)
            _settle(call.future, error)
            return
        size = len(data)
        header = _HEADER.pack(size) if size <= 0x7FFFFFFF else _HEADER.pack(-1) + _LONG.pack(size)
        assert self._loop is not None
        slot.call = call
        slot.running = IN_FLIGHT.track("parse")
        slot.running.__enter__()
        slot.timer = self._loop.call_later(self.budget.seconds, self._overrun, slot)
        self._write(slot, memoryview(header + data))

    def _write(self, slot: _Slot, view: memoryview) -> None:
        try:
            written = os.write(slot.fd, view)
        except BlockingIOError:
            written = 0
        except OSError:  # the worker is gone: its end of file says how
            return
        rest = view[written:] if written < len(view) else None
        assert self._loop is not None
        if rest is not None and slot.outbox is None:
            self._loop.add_writer(slot.fd, self._flush, slot)
        elif rest is None and slot.outbox is not None:
            self._loop.remove_writer(slot.fd)
        slot.outbox = rest

    def _flush(self, slot: _Slot) -> None:
        if slot.outbox is not None:
            self._write(slot, slot.outbox)

    def _readable(self, slot: _Slot) -> None:
        try:
            n = os.readv(slot.fd, [self._view])
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n == 0:
            self._lost(slot)
            return
        if slot.inbox:
            slot.inbox += self._view[:n]
            whole = memoryview(slot.inbox)
        else:
            whole = self._view[:n]
        frame = _frame(whole)
        if frame is None:
            if whole.obj is not slot.inbox:
                slot.inbox = bytearray(whole)
            whole.release()
            return
        try:
            reply = pickle.loads(frame)
        except Exception as error:  # noqa: BLE001 - a reply the daemon cannot read costs its letter and worker
            reply = ("permanent", (f"the parsed letter could not be read back: {type(error).__name__}", None), True)
        frame.release()
        whole.release()
        slot.inbox = bytearray()  # one reply per call: nothing follows it
        self._reply(slot, *reply)

    def _reply(self, slot: _Slot, kind: str, payload: Any, retire: bool) -> None:
        call = self._finish(slot)
        if kind == "ok":
            outcome: Any = payload
        elif kind == "memory":
            mb = self.budget.memory_bytes // (1024 * 1024)
            outcome = BudgetExceeded(f"parsing needed more than the memory budget of {mb} MB", reason="memory")
            IN_FLIGHT.count_overrun("memory")
        elif kind == "transient":
            outcome = TransientError(str(payload))
        else:
            reason, raw = payload
            outcome = PermanentError(str(reason), raw=raw)
        if retire or kind == "memory":
            self._retire(slot)
        else:
            self._idle.append(slot)
        if call is not None:
            _settle(call.future, outcome)
        self._dispatch()

    def _overrun(self, slot: _Slot) -> None:
        seconds = self.budget.seconds
        log.warning("a letter overran its parse budget of %.0f s; its worker is replaced", seconds)
        slot.timer = None
        call = self._finish(slot)
        self._retire(slot)
        IN_FLIGHT.count_overrun("time")
        if call is not None:
            _settle(call.future, BudgetExceeded(f"parsing took longer than the budget of {seconds:g} s",
                                                reason="time"))
        self._dispatch()

    def _lost(self, slot: _Slot) -> None:
        """The worker's socket ended: it died (idle, or on its letter)."""
        call = self._finish(slot)
        self._retire(slot, reap=call is None)  # a crash on a letter is reaped by `_after_crash`, which asks how
        if call is not None:
            crash = asyncio.ensure_future(self._after_crash(slot.worker, call))
            self._crashes.add(crash)
            crash.add_done_callback(self._crashes.discard)
        self._dispatch()

    async def _after_crash(self, worker: Worker, call: _Call) -> None:
        how = await asyncio.to_thread(worker.reap)
        if self._closed:
            _settle(call.future, Closed("the parser pool closed while the letter was parsed"))
        elif call.pdfium and worker.in_pdfium.value:
            log.warning("the PDF reader crashed its parse worker (%s); the letter is read again with pypdf", how)
            call.pdfium = False
            self._waiting.appendleft(call)
        else:
            IN_FLIGHT.count_overrun("crash")
            _settle(call.future, BudgetExceeded(f"the parser process died ({how}) on this letter", reason="crash"))
        self._dispatch()

    def _finish(self, slot: _Slot) -> _Call | None:
        call, slot.call = slot.call, None
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        if slot.running is not None:
            slot.running.__exit__(None, None, None)
            slot.running = None
        return call

    def _retire(self, slot: _Slot, *, reap: bool = True, loop: asyncio.AbstractEventLoop | None = None) -> None:
        loop = loop or self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(slot.fd)
            loop.remove_writer(slot.fd)
        slot.outbox = None
        self._slots.remove(slot)
        if slot in self._idle:
            self._idle.remove(slot)
        with self._lock:
            self._workers.discard(slot.worker)
        slot.worker.signal_kill()
        if reap:
            threading.Thread(target=slot.worker.kill, daemon=True).start()

    def _started(self, worker: Worker | None, error: BaseException | None) -> None:
        with self._lock:
            self._starting -= 1
        if worker is not None:
            if self._closed:
                threading.Thread(target=worker.kill, daemon=True).start()
                return
            self._attach(worker)
        elif self._waiting:
            _settle(self._waiting.popleft().future, error)
        self._dispatch()

    def _abandon(self, workers: list[Worker]) -> None:
        """After `close`: every call still here fails as transient, and the killed workers are reaped."""
        loop = self._loop
        live = loop is not None and not loop.is_closed()
        calls = list(self._waiting)
        for slot in list(self._slots):
            call = self._finish(slot)
            if call is not None:
                calls.append(call)
            if live:
                assert loop is not None
                loop.remove_reader(slot.fd)
                loop.remove_writer(slot.fd)
        self._slots.clear()
        self._idle.clear()
        self._waiting.clear()
        if live:
            for call in calls:
                _settle(call.future, Closed("the parser pool closed while the letter was parsed"))
        for worker in workers:
            threading.Thread(target=worker.kill, daemon=True).start()

    # -- on a starting thread -----------------------------------------------------------------------

    def _start(self) -> None:
        worker: Worker | None = None
        error: BaseException | None = None
        try:
            worker = Worker(self._context, self.budget.memory_bytes, self.budget.seconds)
        except Exception as failed:  # noqa: BLE001 - the letter waiting for it fails with it
            log.debug("parse worker not started: %s", failed)
            error = failed
        with self._lock:
            closed, loop = self._closed, self._loop
            if worker is not None and not closed:
                self._workers.add(worker)
                if loop is None:
                    self._ready.append(worker)
            if loop is None or closed:
                self._starting -= 1
        if worker is not None and closed:
            worker.kill()
        if loop is None or closed:
            return
        try:
            loop.call_soon_threadsafe(self._started, worker, error)
        except RuntimeError:  # that loop is closed: the next one takes the worker
            with self._lock:
                self._starting -= 1
                if worker is not None:
                    self._ready.append(worker)


def _frame(data: memoryview) -> memoryview | None:
    """The first whole message in `data`, or None while it is still coming."""
    if len(data) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack_from(data)
    start = _HEADER.size
    if size == -1:
        if len(data) < start + _LONG.size:
            return None
        (size,) = _LONG.unpack_from(data, start)
        start += _LONG.size
    if len(data) < start + size:
        return None
    return data[start:start + size]


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
