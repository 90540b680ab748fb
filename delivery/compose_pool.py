"""Reads and composes the e-mail channel's letters in a worker process, off the daemon's interpreter lock.

Each e-mail letter's content is read and unsealed, its cover note and MIME written and encrypted to
the recipient's key, all CPU work that held the daemon's one interpreter lock while collection and
routing wanted it too. Here a small pool of worker processes does it (like connectors/watchdog.py's
parse workers: started early, reused), a chunk of rows per call: the daemon sends what its checks
decided (recipient, checked key bytes, notification route) and gets the composed messages back. The
letters' plaintext exists only in the worker's memory (and the encrypted result in the pipe); a
worker writes no core file. A worker that dies or overruns its time is replaced and its chunk's
letters are composed again one by one: a letter that fails alone too costs itself an attempt (it is
retried later), never the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import queue
import resource
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from core.storage.db import Store, make_engine
from delivery.contents import read_contents
from delivery.email_compose import EmailIdentity, compose_email
from delivery.errors import DeliveryError, TransientDeliveryError
from delivery.outbound import Composed, NotificationRoute, Outbound
from delivery.recipients import Recipient

log = logging.getLogger(__name__)

# One chunk (a few letters) takes milliseconds; far past that the worker is stuck: it is replaced.
CHUNK_SECONDS = 60.0
GONE = "message content is gone (purged)"


@dataclass(frozen=True)
class StoreAddress:
    """Where a worker opens the daemon's store itself: its database and keyring file (read there)."""

    database_url: str
    keyring: Path


@dataclass(frozen=True)
class Order:
    """One outbox row to compose, as the daemon's checks left it."""

    message_id: str  # also the trace id
    token: str
    recipient: Recipient
    key: bytes
    notification: NotificationRoute | None = None


@dataclass(frozen=True)
class Made:
    """A composed message and the letter's received time (the only other fact the daemon keeps)."""

    composed: Composed
    received_at: dt.datetime


class ComposeFailed(Exception):
    """An unforeseen failure while composing a row, or a chunk: the row is retried later."""


class _Lost(Exception):
    """The worker died or overran on a chunk: it was replaced."""


# What each order became: made, a reason to hold it (its content is gone), the channel's refusal, or a failure.
Outcome = Made | str | DeliveryError | ComposeFailed


# -- the worker process --------------------------------------------------------------------------


def _serve(conn: Connection, address: StoreAddress) -> None:
    """Worker main loop: one chunk at a time; replies ("ok", outcomes) or ("error", text)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when workers end
    # A worker that crashes leaves no core file: it would hold letters' plaintext on disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from core.logs import install_redaction

    install_redaction()
    store: Store | None = None
    while True:
        try:
            identity, orders = conn.recv()
        except (EOFError, OSError):
            return
        try:
            store = store or _open(address)  # at the first chunk: the daemon may make the keyring first
            reply: tuple[str, Any] = ("ok", _make(store, identity, orders))
        except Exception as error:  # noqa: BLE001 - the whole chunk's problem (database, keyring): retried
            reply = ("error", _describe(error))
        conn.send(reply)


def _open(address: StoreAddress) -> Store:
    from core.storage.vault import Vault, keyring_path, load_keyring

    vault = Vault(load_keyring(address.keyring, create=False), source=keyring_path(address.keyring))
    return Store(make_engine(address.database_url), vault)


def _make(store: Store, identity: EmailIdentity, orders: Sequence[Order]) -> list[tuple[Any, ...]]:
    contents = read_contents(store, {order.message_id for order in orders})
    made: list[tuple[Any, ...]] = []
    for order in orders:
        content = contents.get(order.message_id)
        if content is None:
            made.append(("gone",))
            continue
        message, received_at = content
        item = Outbound(order.token, message, order.recipient, order.key, order.message_id, received_at,
                        notification=order.notification)
        try:
            made.append(("made", compose_email(item, identity), received_at))
        except DeliveryError as error:  # sent as its class and fields: its own pickling loses `code`
            made.append(("refused", type(error), error.text, error.code))
        except Exception as error:  # noqa: BLE001 - this letter's problem, not the chunk's
            made.append(("failed", _describe(error)))
    return made


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def _outcome(reply: tuple[Any, ...]) -> Outcome:
    match reply:
        case ("made", Composed() as composed, dt.datetime() as received_at):
            return Made(composed, received_at)
        case ("gone",):
            return GONE
        case ("refused", type() as kind, str() as text, code) if issubclass(kind, DeliveryError):
            return kind(text, code=code)
        case ("failed", str() as text):
            return ComposeFailed(f"composing failed: {text}")
    return ComposeFailed("the compose worker sent what it may not")


# -- the pool, in the daemon -----------------------------------------------------------------------


class _Worker:
    def __init__(self, context: Any, address: StoreAddress) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(child, address), name="postbud-compose", daemon=True)
        self.process.start()
        child.close()

    def kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, ValueError):
            pass  # already reaped
        self.process.join(5)
        self.conn.close()


class ComposePool:
    """`workers` compose worker processes; `compose` is called from a thread (it blocks on the worker)."""

    def __init__(self, address: StoreAddress, *, workers: int = 1, seconds: float = CHUNK_SECONDS) -> None:
        self.address, self.workers, self.seconds = address, workers, seconds
        # forkserver, as the parse workers: the daemon has threads, and a forked copy of a held lock never opens
        self._context = multiprocessing.get_context("forkserver")
        self._slots: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()  # idle workers; None: start one
        for _ in range(workers):
            self._slots.put(None)
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._closed = False

    def warm_up(self) -> None:
        """Start the workers now, in a thread: their imports then run beside the daemon's start-up."""
        threading.Thread(target=self._start_idle, name="postbud-compose-start", daemon=True).start()

    def compose(self, identity: EmailIdentity, orders: Sequence[Order]) -> list[Outcome]:
        """Each order's outcome, in order. A worker lost or overrunning on a chunk is replaced and each of
        its letters composed alone, so one letter that kills workers costs only itself an attempt (a
        TransientDeliveryError: retried, counted, dead-lettered after max_attempts); ComposeFailed when
        the chunk cannot be composed at all (the pool closed, the worker cannot open the store)."""
        try:
            return self._compose(identity, orders)
        except _Lost as lost:
            if len(orders) == 1:
                return [TransientDeliveryError(f"composing this letter {lost}")]
            log.warning("compose worker lost on a chunk of %d letters (%s); each is composed alone", len(orders), lost)
            return [self.compose(identity, [order])[0] for order in orders]

    def _compose(self, identity: EmailIdentity, orders: Sequence[Order]) -> list[Outcome]:
        if self._closed:
            raise ComposeFailed("the compose pool is closed")
        worker = self._slots.get()
        done = False
        try:
            if worker is not None and not worker.process.is_alive():
                self._retire(worker)
                worker = None
            worker = worker or self._spawn()
            kind, payload = self._call(worker, identity, orders)
            done = True
        finally:
            if not done and worker is not None:  # mid-conversation, or dead: never used again
                self._retire(worker)
                worker = None
            self._slots.put(worker)
        if kind != "ok":
            raise ComposeFailed(f"composing failed: {payload}")
        return [_outcome(reply) for reply in payload]

    def _call(self, worker: _Worker, identity: EmailIdentity, orders: Sequence[Order]) -> tuple[str, Any]:
        try:
            worker.conn.send((identity, list(orders)))
            if not worker.conn.poll(self.seconds):
                log.error("a compose worker overran %.0f s on %d letters; it is replaced", self.seconds, len(orders))
                raise _Lost(f"took longer than {self.seconds:g} s")
            kind, payload = worker.conn.recv()
        except (EOFError, OSError) as error:
            raise _Lost(f"lost its worker ({type(error).__name__})") from None
        return kind, payload

    def close(self) -> None:
        """Stop every worker (they hold no state); a chunk under way fails and is retried."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        idle: list[_Worker] = []
        while True:
            try:
                worker = self._slots.get_nowait()
            except queue.Empty:
                break
            if worker is not None:
                idle.append(worker)
        for worker in live:
            if worker in idle:
                self._retire(worker)
            else:  # busy in a caller's thread, which sees its pipe end: only the signal from here
                try:
                    worker.process.kill()
                except (OSError, ValueError):
                    pass

    def pids(self) -> list[int]:
        """The live workers' process ids (tests, measurements)."""
        with self._lock:
            return [w.process.pid for w in self._live if w.process.pid is not None and w.process.is_alive()]

    def _start_idle(self) -> None:
        taken: list[_Worker | None] = []
        for _ in range(self.workers):
            try:
                taken.append(self._slots.get_nowait())
            except queue.Empty:
                break
        for worker in taken:
            try:
                worker = worker or self._spawn()
            except Exception as error:  # noqa: BLE001 - started again for the first chunk, which then fails
                log.debug("compose worker not started ahead: %s", error)
            self._slots.put(worker)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context, self.address)
        with self._lock:
            closed = self._closed
            if not closed:
                self._live.add(worker)
        if closed:
            worker.kill()
            raise ComposeFailed("the compose pool is closed")
        return worker

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._live.discard(worker)
        worker.kill()
