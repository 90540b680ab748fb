"""Starts a fake for every registered connector that has one, filled with generated mail.

The providers served are the connector registry's, in its order: `fakes()` pairs each connector
class with its fake's factory

    def make_fake(*, folder: pathlib.Path, ca: sandbox.testca.LocalCA, seed: int = 0) -> FakeProvider

returning a `sandbox.fake.FakeProvider` subclass with generated credentials (issue any
client certificate from `ca`; `folder` is the fake's own scratch directory). `serve_sandbox` fills
it through `add_messages`, serves `fake.app` over TLS with `fake.client_certs`, and reports
`base_url + fake.base_path` and `fake.credentials()` (a flat str -> str dict: ids, tokens, file paths).
A connector without a fake (the drop folder, most plugins) is not served.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from connectors.eboks import EboksConnector
from connectors.mitdk import MitdkConnector
from connectors.ngdp import NgdpConnector
from connectors.registry import discover
from sandbox.fake import FakeProvider
from sandbox.providers import eboks, mitdk, ngdp
from sandbox.generator import generate
from sandbox.server import serve_tls
from sandbox.testca import LocalCA

log = logging.getLogger(__name__)



class FakeFactory(Protocol):
    def __call__(self, *, folder: Path, ca: LocalCA, seed: int = 0) -> FakeProvider: ...


# Keyed by connector class, not by name: the names come from the registry.
_FAKES: dict[object, FakeFactory] = {
    NgdpConnector: ngdp.make_fake,
    EboksConnector: eboks.make_fake,
    MitdkConnector: mitdk.make_fake,
}


def fakes() -> dict[str, FakeFactory]:
    """Connector name -> fake factory, for each registered connector that has a fake, in registry order."""
    return {name: _FAKES[reg.factory] for name, reg in discover().items() if reg.factory in _FAKES}


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


async def serve_sandbox(folder: Path, cvrs: list[str], *, messages_per_cvr: int, seed: int,
                        ports: Mapping[str, int] | None = None,
                        fault_rate: float = 0.0, names: Mapping[str, str] | None = None) -> SandboxHandle:
    """Start every registered connector's fake on 127.0.0.1 with `messages_per_cvr` generated messages per CVR.

    `ports` pins a provider's port (e.g. {"ngdp": 8443}) so a static config can name it; the
    others get one from the OS. The CA, client certificates and credentials in `folder` are
    reused across runs with the same `seed`, so such a config stays valid. `fault_rate` makes
    that fraction of requests fail with a random injectable fault (seeded), to watch retries.
    `names` gives a CVR's company name where a provider shows it (mit.dk's mailbox owner name), so a
    connector can tell the company's mailbox by its organisation's name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca = LocalCA(folder / "ca")
    stack = contextlib.AsyncExitStack()
    endpoints: dict[str, SandboxEndpoint] = {}
    providers = fakes()
    try:
        for index, (name, make_fake) in enumerate(providers.items()):
            fake = make_fake(folder=folder / name, ca=ca, seed=seed)
            if fault_rate:
                fake.faults.set_rate(fault_rate)
            for cvr in cvrs:
                named = getattr(fake, "mailbox_for", None)
                if names and cvr in names and callable(named):
                    named(cvr, names[cvr])
                # Each provider gets its own messages: the same mail in two mailboxes would be a
                # different scenario (and is not what a company sees).
                fake.add_messages(generate(cvr, messages_per_cvr, seed=seed * len(providers) + index))
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
