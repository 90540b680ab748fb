"""Shared plumbing of the fake providers: message store, bookkeeping, faults and the conformance hooks.

A provider's fake subclasses `FakeProvider`, sets `name` (and `client_certs` if it wants mutual
TLS), implements `build_app()` (its starlette routes) and, when its listing key is not the MeMo
messageUUID, `key_for()`. Its routes read `self.messages` / `pending(cvr)` and call
`record_fetch(key)` when they serve a message's content and `record_ack(key)` when the connector
acknowledges one. Everything `sandbox.conformance.ConformanceFake` asks for is implemented here.

`FakeProvider.app` wraps the routes in the shared `FaultMiddleware`; serve it with
`sandbox.server.serve_tls(fake.app, ca=..., client_certs=fake.client_certs)`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from starlette.types import ASGIApp

from sandbox.faults import Fault, FaultMiddleware, Faults, json_error
from sandbox.server import ClientCerts
from core.domain import NormalizedMessage


@dataclass(frozen=True)
class Stored:
    """A message as the fake holds it: its listing key and the mailbox (CVR) it was filed in."""

    key: str
    cvr: str
    message: NormalizedMessage


class FakeProvider:
    """Base of every fake provider; see the module docstring for what a subclass adds."""

    name: ClassVar[str] = "fake"
    client_certs: ClassVar[ClientCerts] = ClientCerts.NONE
    base_path: ClassVar[str] = ""

    def __init__(self, *, seed: int = 0) -> None:
        self.faults = Faults(seed=seed)
        self._lock = threading.RLock()
        self.messages: dict[str, Stored] = {}
        self.poisoned: set[str] = set()
        self._acked: set[str] = set()
        self._fetches: Counter[str] = Counter()
        self.auth_broken = False
        self._app: ASGIApp | None = None

    # -- conformance interface -------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.poisoned.clear()
            self._acked.clear()
            self._fetches.clear()
            self.auth_broken = False
            self.faults.clear()

    def add_messages(self, messages: Sequence[NormalizedMessage]) -> list[str]:
        keys: list[str] = []
        with self._lock:
            for message in messages:
                key = self.key_for(message)
                cvr = message.recipient.id or ""
                self.messages[key] = Stored(key, cvr, message)
                keys.append(key)
        return keys

    def inject(self, fault: Fault, *, times: int = 1) -> None:
        self.faults.inject(fault, times=times)

    def set_poison(self, key: str) -> None:
        with self._lock:
            if key not in self.messages:
                raise KeyError(key)
            self.poisoned.add(key)

    def break_auth(self) -> None:
        self.auth_broken = True

    def acknowledged(self) -> set[str]:
        with self._lock:
            return set(self._acked)

    def fetch_counts(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._fetches)

    # -- for subclasses ----------------------------------------------------------------------
    def key_for(self, message: NormalizedMessage) -> str:
        """The listing key of a message; the MeMo messageUUID unless the provider has its own ids."""
        return message.message_id

    def pending(self, cvr: str | None = None) -> list[Stored]:
        """Messages not yet acknowledged, in arrival order, optionally for one CVR."""
        with self._lock:
            return [s for s in self.messages.values()
                    if s.key not in self._acked and (cvr is None or s.cvr == cvr)]

    def record_fetch(self, key: str) -> None:
        with self._lock:
            self._fetches[key] += 1

    def record_ack(self, key: str) -> None:
        with self._lock:
            self._acked.add(key)

    def is_acknowledged(self, key: str) -> bool:
        with self._lock:
            return key in self._acked

    def build_app(self) -> ASGIApp:
        raise NotImplementedError(f"{type(self).__name__} must implement build_app()")

    def render_error(self, status: int, message: str) -> tuple[bytes, str]:
        """The provider's error body for injected faults; JSON `{code, message}` by default."""
        return json_error(status, message)

    def credentials(self) -> dict[str, str]:
        """What an operator would configure to reach this fake (ids, tokens, file paths)."""
        return {}

    @property
    def app(self) -> ASGIApp:
        if self._app is None:
            self._app = FaultMiddleware(self.build_app(), self.faults, render_error=self.render_error)
        return self._app
