"""The conformance suite can fail: each check catches the connector bug it exists for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sandbox import conformance
from connectors.base import (
    AcknowledgePolicy,
    AuthError,
    Capability,
    ConnectorContext,
    ConnectorSettings,
    Fetched,
    MessageRef,
    Page,
    PermanentError,
    TransientError,
)
from connectors.ngdp.connector import NgdpConnector, Settings
from sandbox.providers.ngdp import NgdpFake, make_fake
from sandbox.server import serve_tls
from sandbox.testca import LocalCA

CVR = "12345674"


class Wrapped:
    """A connector that delegates to a working NgdpConnector; subclasses break one obligation."""

    name: ClassVar[str] = "broken"
    Settings: ClassVar[type[ConnectorSettings]] = Settings
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    default_acknowledge: ClassVar[AcknowledgePolicy] = AcknowledgePolicy.AFTER_DELIVERY

    def __init__(self, inner: NgdpConnector) -> None:
        self.inner = inner

    async def list_new(self, cursor: str | None) -> Page:
        return await self.inner.list_new(cursor)

    async def fetch(self, ref: MessageRef) -> Fetched:
        return await self.inner.fetch(ref)

    async def acknowledge(self, ref: MessageRef) -> None:
        await self.inner.acknowledge(ref)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ClaimsRepliesWithoutSending(Wrapped):
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.REPLY})


class NoAcknowledgePolicy(Wrapped):
    default_acknowledge = "whenever"  # type: ignore[assignment]  # the bug this check exists for


class StopsAfterFirstPage(Wrapped):
    async def list_new(self, cursor: str | None) -> Page:
        page = await self.inner.list_new(cursor)
        return Page(page.refs, None, False)


class FetchesTwice(Wrapped):
    async def fetch(self, ref: MessageRef) -> Fetched:
        await self.inner.fetch(ref)
        return await self.inner.fetch(ref)


class AcknowledgesOnFetch(Wrapped):
    async def fetch(self, ref: MessageRef) -> Fetched:
        fetched = await self.inner.fetch(ref)
        await self.inner.acknowledge(ref)
        return fetched


class InMemoryHandles(Wrapped):
    """Hands out handles that only this instance can resolve."""

    def __init__(self, inner: NgdpConnector) -> None:
        super().__init__(inner)
        self.refs: dict[str, MessageRef] = {}

    async def list_new(self, cursor: str | None) -> Page:
        page = await self.inner.list_new(cursor)
        refs = []
        for ref in page.refs:
            handle = str(len(self.refs))
            self.refs[handle] = ref
            refs.append(MessageRef(ref.key, handle, ref.meta))
        return Page(tuple(refs), page.cursor, page.more)

    def _inner(self, ref: MessageRef) -> MessageRef:
        if ref.handle not in self.refs:
            raise PermanentError("unknown handle")
        return self.refs[ref.handle]

    async def fetch(self, ref: MessageRef) -> Fetched:
        return await self.inner.fetch(self._inner(ref))

    async def acknowledge(self, ref: MessageRef) -> None:
        await self.inner.acknowledge(self._inner(ref))


class UntypedAuth(Wrapped):
    async def list_new(self, cursor: str | None) -> Page:
        try:
            return await self.inner.list_new(cursor)
        except AuthError as exc:
            raise RuntimeError("login failed") from exc


class DropsRetryAfter(Wrapped):
    async def list_new(self, cursor: str | None) -> Page:
        try:
            return await self.inner.list_new(cursor)
        except TransientError as exc:
            raise TransientError(str(exc)) from exc


class PoisonIsTransient(Wrapped):
    async def fetch(self, ref: MessageRef) -> Fetched:
        try:
            return await self.inner.fetch(ref)
        except PermanentError as exc:
            raise TransientError(str(exc)) from exc


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[NgdpFake, Callable[[], NgdpConnector]]]:
    ca = LocalCA(tmp_path / "ca")
    fake = make_fake(folder=tmp_path / "ngdp", ca=ca, seed=4)
    creds = fake.credentials()
    async with serve_tls(fake.app, ca=ca, client_certs=fake.client_certs) as base:
        settings = Settings(base_url=base + fake.base_path, system_id=creds["system_id"],
                            api_token=creds["api_token"], client_cert=Path(creds["client_cert"]),
                            client_key=Path(creds["client_key"]), ca_file=ca.cert_path, page_size=10)
        yield fake, lambda: NgdpConnector(settings)


@pytest.mark.parametrize(("broken", "check", "reason"), [
    (ClaimsRepliesWithoutSending, conformance.check_contract, "no Replier"),
    (NoAcknowledgePolicy, conformance.check_contract, "default_acknowledge"),
    (StopsAfterFirstPage, conformance.check_pagination_complete, "missed"),
    (FetchesTwice, conformance.check_no_double_fetch, "more than once"),
    (AcknowledgesOnFetch, conformance.check_ack_after_commit, "acknowledged by fetch"),
    (InMemoryHandles, conformance.check_handles_survive_restart, "before the restart failed"),
    (UntypedAuth, conformance.check_auth_failure, "RuntimeError"),
    (DropsRetryAfter, conformance.check_transient_faults, "retry_after"),
    (PoisonIsTransient, conformance.check_poison_message, "not PermanentError"),
], ids=lambda value: getattr(value, "__name__", None))
async def test_each_check_catches_its_bug(served: tuple[NgdpFake, Callable[[], NgdpConnector]],
                                          broken: type[Wrapped], check: conformance.Check,
                                          reason: str) -> None:
    fake, make = served
    target = conformance.Target(lambda: broken(make()), fake, cvr=CVR)
    with pytest.raises(conformance.ConformanceFailure, match=reason):
        await check(target)


async def test_run_conformance_reports_the_failing_checks(
        served: tuple[NgdpFake, Callable[[], NgdpConnector]]) -> None:
    fake, make = served

    async def make_async() -> Any:
        return AcknowledgesOnFetch(make())  # an awaitable factory is accepted too

    report = await conformance.run_conformance(make_async, fake, cvr=CVR, messages=12)
    assert not report.ok
    assert "acknowledged by fetch" in report.failed["ack_after_commit"]
    assert "auth_failure" in report.passed
    assert fake.pending() == []  # the fake is reset after the run


def test_the_ngdp_fake_implements_the_fake_interface(tmp_path: Path) -> None:
    fake = make_fake(folder=tmp_path, ca=LocalCA(tmp_path / "ca"))
    assert isinstance(fake, conformance.ConformanceFake)


async def test_the_drop_folder_meets_the_declarations(tmp_path: Path) -> None:
    from connectors.folder import FolderConnector, FolderSettings
    from sandbox.state import MemoryState

    context = ConnectorContext("drop", CVR, tmp_path, MemoryState())
    target = conformance.Target(lambda: FolderConnector(FolderSettings(path=tmp_path), context),
                                fake=None)  # type: ignore[arg-type]  # the declarations need no provider
    await conformance.check_contract(target)
    assert FolderConnector.default_acknowledge is AcknowledgePolicy.AFTER_COMMIT
