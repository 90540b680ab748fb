"""One parse worker process: it serves one call at a time under its budget, and the daemon's handle on it.

The worker reads a call `(fn, args, pdfium)` from its end of a socket pair and replies `(kind,
payload, retire)`: kind `ok` with fn's result; `permanent` with the reason and the raw bytes the
error carried (a letter's evidence); `transient` with the reason; `memory` when the call ran out of
the address space. `retire` asks the daemon to replace the worker (it exits after the reply).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import resource
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from connectors.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

# A worker whose peak resident memory passed this share of the budget is replaced after its letter,
# so one big letter does not keep a big process around.
RECYCLE_SHARE = 0.5
# Text extraction gets half the letter's time: slow PDFs then yield the text read so far instead of
# costing the whole letter.
TEXT_SHARE = 0.5


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


class Closed(TransientError):
    """The pool closed (the daemon stops) while the letter waited: try again at the next start."""


def serve(conn: Connection, memory_bytes: int, text_seconds: float, in_pdfium: Any) -> None:
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
            reply = ("permanent", (str(error), error.raw))
        except TransientError as error:
            reply = ("transient", str(error))
        except RecursionError as error:
            reply = ("permanent", (f"nested too deeply for the parser ({error})", None))
        except Exception as error:  # noqa: BLE001 - any parser failure is this one letter's problem
            reply = ("permanent", (f"the parser failed: {type(error).__name__}: {error}"[:500], None))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        retire = retire or peak > memory_bytes * RECYCLE_SHARE or text.stragglers() > 0
        try:
            # pickle itself, not Connection.send's ForkingPickler (a new pickler and buffer per
            # reply, for reducers no parsed letter needs); the daemon reads it with pickle.loads.
            data = pickle.dumps((*reply, retire), pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - e.g. a result too deep or too big to pickle
            retire = True
            data = pickle.dumps(("permanent", (f"the parsed letter could not be returned: {type(error).__name__}",
                                               None), retire), pickle.HIGHEST_PROTOCOL)
        conn.send_bytes(data)
        if retire:
            return


class Worker:
    """A started worker process and the daemon's end of its socket pair (`conn`)."""

    def __init__(self, context: Any, memory_bytes: int, seconds: float) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.in_pdfium = context.RawValue("b", 0)  # set by the worker while PDFium runs
        self.process = context.Process(
            target=serve, args=(child, memory_bytes, seconds * TEXT_SHARE, self.in_pdfium),
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
        """Kill, reap and close (blocks up to 5 s: not on the event loop's thread)."""
        self.signal_kill()
        self.process.join(5)
        self.conn.close()

    def reap(self) -> str:
        """`kill`, saying how the process had ended."""
        how = self.describe_exit()
        self.kill()
        return how

    def describe_exit(self) -> str:
        """How the process ended (waits up to a second for its status: not on the event loop's thread)."""
        self.process.join(1)
        code = self.process.exitcode
        if code is None:
            return "no exit status"
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit status {code}"
