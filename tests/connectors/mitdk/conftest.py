"""Fixtures for the mit.dk connector tests: the fake over real TLS on 127.0.0.1 and connector factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connector, ConnectorContext, Fetched, TransientError
from connectors.mitdk import MitdkConnector, Settings
from sandbox.providers.mitdk import FakeMitdk
from sandbox.server import serve_tls
from sandbox.state import MemoryState
from sandbox.testca import LocalCA

CVR = "12345674"
OTHER_CVR = "87654328"




class Clock:
    """Wall-clock seconds the test moves by hand, shared by the fake and the connector."""

    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_options() -> dict[str, Any]:
    """Overridden by tests (through parametrize) to configure the fake."""
    return {}


@pytest.fixture
def fake(clock: Clock, fake_options: dict[str, Any]) -> FakeMitdk:
    fake = FakeMitdk(clock=clock, **fake_options)
    fake.mailbox_for(CVR, "Testfirma ApS")
    fake.mailbox_for(OTHER_CVR, "Andet Firma A/S")
    return fake


@pytest.fixture
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.getbasetemp() / "mitdk-ca")


@pytest.fixture
async def base_url(fake: FakeMitdk, ca: LocalCA) -> AsyncIterator[str]:
    async with serve_tls(fake.app, ca=ca, server_name="fake-mitdk") as url:
        yield url + fake.base_path


@pytest.fixture
def make_settings(base_url: str, ca: LocalCA, fake: FakeMitdk) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **fake.credentials(),
            "base_url": base_url,
            "ca_file": ca.cert_path,
            "cvr": CVR,
            "mailbox_id": fake.mailbox_for(CVR).mailbox_id,
            "page_size": 10,
        }
        values.update(overrides)
        return Settings.model_validate(values)

    return make


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def make_connector(make_settings: Callable[..., Settings], state: MemoryState, clock: Clock,
                   tmp_path: Path) -> Callable[..., MitdkConnector]:
    """Connectors share one state store, as postbud's mailbox does, so the token chain carries over."""

    def make(*, store: MemoryState | None = None, organisation_name: str = "", **overrides: Any) -> MitdkConnector:
        context = ConnectorContext(mailbox="mitdk", organisation=CVR, base_dir=tmp_path,
                                   state=store if store is not None else state, organisation_name=organisation_name)
        return MitdkConnector(make_settings(**overrides), context, clock=clock)

    return make


@pytest.fixture
def collect() -> Callable[..., Awaitable[dict[str, Fetched]]]:
    """Plays the collector: list to the end, dedupe on key, fetch, commit, acknowledge; retries transients."""

    async def run(connector: Connector, *, attempts: int = 50) -> dict[str, Fetched]:
        committed: dict[str, Fetched] = {}
        acked: set[str] = set()
        cursor: str | None = None
        failures = 0
        while True:
            try:
                page = await connector.list_new(cursor)
                for ref in page.refs:
                    if ref.key not in committed:
                        committed[ref.key] = await connector.fetch(ref)
                    if ref.key not in acked:
                        await connector.acknowledge(ref)
                        acked.add(ref.key)
            except TransientError:
                failures += 1
                assert failures <= attempts, "too many transient failures"
                continue
            if not page.more:
                return committed
            cursor = page.cursor

    return run
