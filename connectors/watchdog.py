"""Runs each letter's parse and text extraction in a reusable worker process under one time and memory budget.

A thread cannot be stopped, a process can: every parse of provider data goes through `run`, which
hands the call to one of a few long-lived worker processes (connectors/parse_worker.py: started
once, reused for every letter, so the cost per letter is two pickles). A worker has an
address-space limit (RLIMIT_AS); a call that overruns the time budget gets its worker killed and
replaced. Either way the letter fails with `BudgetExceeded`, a `PermanentError`, and is
quarantined; the next letter goes through.

The event loop drives the workers itself: a call is written to a worker's socket without blocking
and its reply read when the loop sees the socket readable, so a letter's parse costs the daemon no
thread hop (a thread per worker cost every letter two hand-offs, each waiting for the interpreter
lock beside routing and delivery). Only starting a worker (the fork server can take a second) and
reaping a killed one run on threads of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from connectors.parse_pool import ParsePool
from connectors.parse_worker import Budget, BudgetExceeded

__all__ = ["Budget", "BudgetExceeded", "ParsePool", "configure", "pool", "run", "shutdown", "warm_up", "worker_pids"]

T = TypeVar("T")


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
