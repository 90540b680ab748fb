"""Starts every fake provider that exists, filled with generated mail, for `postbud sandbox` and tests.

Provider fakes are found by convention, so a new one needs no change here: a module
`sandbox.providers.<name>` (name in `PROVIDERS`) that defines

    def make_fake(*, folder: pathlib.Path, ca: sandbox.testca.LocalCA, seed: int = 0) -> FakeProvider

returning a `sandbox.fake.FakeProvider` subclass with generated credentials (issue any
client certificate from `ca`; `folder` is the fake's own scratch directory). `serve_sandbox` fills
it through `add_messages`, serves `fake.app` over TLS with `fake.client_certs`, and reports
`base_url + fake.base_path` and `fake.credentials()` (a flat str -> str dict: ids, tokens, file paths).
A provider whose module does not exist yet is skipped; any other import error is raised.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from sandbox.fake import FakeProvider
from sandbox.generator import generate
from sandbox.server import serve_tls
from sandbox.testca import LocalCA

log = logging.getLogger(__name__)

PROVIDERS: tuple[str, ...] = ("ngdp", "eboks", "mitdk")


@dataclass(frozen=True)
class SandboxEndpoint:
    """One running fake: where it listens and what a connector needs to log on to it."""

    name: str
    base_url: str
    credentials: dict[str, str]
    fake: FakeProvider = field(repr=False, compare=False)


@dataclass
class SandboxHandle:
    """The running sandbox; `aclose()` (or leaving `async with`) stops every fake."""

    folder: Path
    ca_path: Path
    endpoints: dict[str, SandboxEndpoint]
    _stack: contextlib.AsyncExitStack = field(repr=False)

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def describe(self) -> dict[str, object]:
        """A JSON-ready summary (also written to `<folder>/sandbox.json`, mode 0600)."""
        return {
            "ca_file": str(self.ca_path),
            "providers": {name: {"base_url": e.base_url, **e.credentials}
                          for name, e in self.endpoints.items()},
        }


def _factory(name: str) -> object | None:
    module_name = f"sandbox.providers.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return getattr(module, "make_fake", None)


async def serve_sandbox(folder: Path, cvrs: list[str], *, messages_per_cvr: int, seed: int,
                        ports: Mapping[str, int] | None = None,
                        fault_rate: float = 0.0) -> SandboxHandle:
    """Start every available fake on 127.0.0.1 with `messages_per_cvr` generated messages per CVR.

    `ports` pins a provider's port (e.g. {"ngdp": 8443}) so a static config can name it; the
    others get one from the OS. The CA, client certificates and credentials in `folder` are
    reused across runs with the same `seed`, so such a config stays valid. `fault_rate` makes
    that fraction of requests fail with a random injectable fault (seeded), to watch retries.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca = LocalCA(folder / "ca")
    stack = contextlib.AsyncExitStack()
    endpoints: dict[str, SandboxEndpoint] = {}
    try:
        for index, name in enumerate(PROVIDERS):
            make_fake = _factory(name)
            if make_fake is None or not callable(make_fake):
                log.info("sandbox: no fake for %s yet, skipped", name)
                continue
            fake: FakeProvider = make_fake(folder=folder / name, ca=ca, seed=seed)
            if fault_rate:
                fake.faults.set_rate(fault_rate)
            for cvr in cvrs:
                # Each provider gets its own messages: the same mail in two mailboxes would be a
                # different scenario (and is not what a company sees).
                fake.add_messages(generate(cvr, messages_per_cvr, seed=seed * len(PROVIDERS) + index))
            base = await stack.enter_async_context(
                serve_tls(fake.app, ca=ca, port=(ports or {}).get(name, 0), server_name=f"{name}-sandbox",
                          client_certs=fake.client_certs))
            endpoints[name] = SandboxEndpoint(name, base + fake.base_path, fake.credentials(), fake)
            log.info("sandbox: %s listening on %s", name, base)
    except BaseException:
        await stack.aclose()
        raise
    handle = SandboxHandle(folder, ca.cert_path, endpoints, stack)
    summary = folder / "sandbox.json"
    summary.touch(mode=0o600, exist_ok=True)
    summary.write_text(json.dumps(handle.describe(), indent=2))
    return handle
