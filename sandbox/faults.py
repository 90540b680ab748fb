"""Injectable faults for the fake providers: an ASGI middleware every fake wraps its app in.

A test (or the sandbox) queues faults on a `Faults` object; the middleware applies the next queued
fault whose filter matches a request, or draws one at a configured rate from a seeded RNG::

    faults = Faults(seed=1)
    faults.inject(Fault.rate_limited(retry_after=7))          # the next request gets 429
    faults.inject(Fault.unavailable(), times=3, path="/memos/")  # three 503s on matching paths
    faults.set_rate(0.1, (Fault.server_error(), Fault.truncated()))  # 10 % of all requests
    app = FaultMiddleware(inner_app, faults)

Kinds: latency (delay, then the real answer), 429 with Retry-After, 500/503, a non-JSON (HTML)
reply, and a truncated body (the real headers with their Content-Length, half the body, then the
connection drops).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class FaultKind(StrEnum):
    LATENCY = "latency"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    NON_JSON = "non_json"
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request; build it with the class methods."""

    kind: FaultKind
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        return cls(FaultKind.LATENCY, delay=seconds)

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        return cls(FaultKind.RATE_LIMITED, status=429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls(FaultKind.SERVER_ERROR, status=status)

    @classmethod
    def unavailable(cls, retry_after: float | None = None) -> Fault:
        return cls(FaultKind.UNAVAILABLE, status=503, retry_after=retry_after)

    @classmethod
    def non_json(cls, status: int = 200) -> Fault:
        """An HTML page where the API answers JSON/XML (a proxy's error page, a maintenance page)."""
        return cls(FaultKind.NON_JSON, status=status)

    @classmethod
    def truncated(cls) -> Fault:
        return cls(FaultKind.TRUNCATED)


ALL_FAULT_KINDS: tuple[Fault, ...] = (
    Fault.latency(0.05),
    Fault.rate_limited(1),
    Fault.server_error(),
    Fault.unavailable(1),
    Fault.non_json(),
    Fault.truncated(),
)

#: Renders a provider's error body for a status: returns (body, content type).
ErrorRenderer = Callable[[int, str], tuple[bytes, str]]


def json_error(status: int, message: str) -> tuple[bytes, str]:
    """The NgDP `ErrorMessage` shape, also a sane default for JSON providers."""
    body = {"code": str(status), "message": message, "fieldErrors": []}
    return json.dumps(body).encode(), "application/json"


@dataclass
class _Queued:
    fault: Fault
    remaining: int
    path: str | None
    method: str | None


class Faults:
    """The faults a fake applies: a queue for exact tests, a seeded rate for soak runs.

    Thread-safe because the sandbox may be driven from a test thread while the loop serves.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Queued] = deque()
        self._rng = random.Random(seed)
        self._rate = 0.0
        self._pool: tuple[Fault, ...] = ()
        self._spare: tuple[str, ...] = ()
        self.applied: list[tuple[FaultKind, str]] = []

    def inject(self, fault: Fault, *, times: int = 1, path: str | None = None,
               method: str | None = None) -> None:
        """Apply `fault` to the next `times` requests whose path contains `path` (and method matches)."""
        with self._lock:
            self._queue.append(_Queued(fault, times, path, method.upper() if method else None))

    def set_rate(self, rate: float, pool: Sequence[Fault] = ALL_FAULT_KINDS, *,
                 spare: Sequence[str] = ()) -> None:
        """Besides the queue, apply a fault drawn from `pool` to a fraction `rate` of requests
        (except those whose path contains one of `spare`)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, got {rate}")
        with self._lock:
            self._rate = rate
            self._pool = tuple(pool)
            self._spare = tuple(spare)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rate = 0.0
            self._pool = ()
            self.applied.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(q.remaining for q in self._queue)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any (consumes it)."""
        with self._lock:
            for queued in self._queue:
                if queued.path is not None and queued.path not in path:
                    continue
                if queued.method is not None and queued.method != method:
                    continue
                queued.remaining -= 1
                if queued.remaining <= 0:
                    self._queue.remove(queued)
                self.applied.append((queued.fault.kind, path))
                return queued.fault
            if self._pool and not any(p in path for p in self._spare) and self._rng.random() < self._rate:
                fault = self._rng.choice(self._pool)
                self.applied.append((fault.kind, path))
                return fault
        return None


# Set while a request is being truncated on purpose, so the server's complaint about the
# incomplete response is not logged as an error (it runs in the same task, hence sees the value).
_TRUNCATING: contextvars.ContextVar[bool] = contextvars.ContextVar("postbud_truncating", default=False)


class _QuietIntendedTruncation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_TRUNCATING.get() and "without completing response" in record.getMessage())


logging.getLogger("uvicorn.error").addFilter(_QuietIntendedTruncation())

_HTML = (b"<!DOCTYPE html><html><head><title>Service midlertidigt utilg\xc3\xa6ngelig</title></head>"
         b"<body><h1>Vi arbejder p\xc3\xa5 siden</h1><p>Pr\xc3\xb8v igen senere.</p></body></html>")


class FaultMiddleware:
    """Pure ASGI middleware: applies the `Faults` queue before (or, when truncating, around) the app."""

    def __init__(self, app: ASGIApp, faults: Faults, *,
                 render_error: ErrorRenderer = json_error) -> None:
        self.app = app
        self.faults = faults
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self.faults.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind is FaultKind.LATENCY:
            await asyncio.sleep(fault.delay)
            await self.app(scope, receive, send)
        elif fault.kind is FaultKind.TRUNCATED:
            _TRUNCATING.set(True)
            await self.app(scope, receive, _truncating(send))
        elif fault.kind is FaultKind.NON_JSON:
            await _respond(send, fault.status, _HTML, "text/html; charset=utf-8", None)
        else:
            body, ctype = self.render_error(fault.status, f"injected {fault.kind.value}")
            await _respond(send, fault.status, body, ctype, fault.retry_after)


async def _respond(send: Send, status: int, body: bytes, content_type: str,
                   retry_after: float | None) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        # Retry-After is whole seconds on the wire (RFC 9110 delay-seconds).
        headers.append((b"retry-after", str(max(0, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _truncating(send: Send) -> Send:
    """Wraps `send`: the headers go out unchanged, then half the body, then the app stops mid-body."""
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        # The final body message is swallowed: the app returns with the response incomplete, so
        # the server closes the connection short of Content-Length, as a dropped proxy would.
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})

    return wrapped
