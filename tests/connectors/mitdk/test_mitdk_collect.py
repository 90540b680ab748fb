"""Collecting whole fake mit.dk mailboxes: complete, exactly once, through injected faults."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox.providers.mitdk import FakeMitdk
from sandbox.faults import Fault
from sandbox.generator import generate
from sandbox.state import MemoryState

CVR = "12345674"
OTHER_CVR = "87654328"


@pytest.mark.slow  # 10-20 s on this machine, mostly PDF text extraction
async def test_collects_a_mailbox_of_1000_completely_and_exactly_once(
        fake: FakeMitdk, make_connector: Any, collect: Any) -> None:
    # GIVEN 1,000 letters for our company and a few for another company
    keys = fake.add_messages(generate(CVR, 1000, seed=3))
    fake.add_messages(generate(OTHER_CVR, 5, seed=4))
    connector = make_connector(page_size=100)
    started = time.perf_counter()
    try:
        # WHEN the collector runs THEN every letter arrives once, downloaded once, marked read
        collected = await collect(connector)
        assert set(collected) == set(keys)
        assert all(n == 1 for n in fake.fetch_counts().values())
        assert fake.acknowledged() == set(keys)
        # AND a second run finds nothing new
        assert await collect(connector) == {}
    finally:
        await connector.aclose()
    print(f"mit.dk: 1000 messages in {time.perf_counter() - started:.1f} s")
    assert fake.refreshes == 1


async def test_collects_exactly_once_through_random_faults(fake: FakeMitdk, make_connector: Any,
                                                           collect: Any) -> None:
    # GIVEN 120 letters and, once logged on, a provider failing 15 % of requests in every way
    keys = fake.add_messages(generate(CVR, 120, seed=5))
    connector = make_connector(page_size=25)
    try:
        await connector.list_new(None)
        fake.faults.set_rate(0.15, (Fault.latency(0.01), Fault.rate_limited(1), Fault.server_error(),
                                    Fault.unavailable(1), Fault.non_json(), Fault.truncated()))
        fake.error_messages_pending = 3
        fake.rest_exceptions_pending = 3
        # WHEN the collector runs, retrying what is transient
        collected = await collect(connector, attempts=500)
    finally:
        await connector.aclose()
    # THEN every letter was committed once and marked read
    assert set(collected) == set(keys)
    assert fake.acknowledged() == set(keys)
    assert len(fake.faults.applied) > 10


async def test_the_sandbox_factory_serves_a_collectable_mailbox(tmp_path: Any, collect: Any) -> None:
    """`make_fake` as `postbud sandbox` calls it, configured only from `credentials()`."""
    from connectors.base import ConnectorContext
    from connectors.mitdk import MitdkConnector, Settings
    from sandbox.providers.mitdk import make_fake
    from sandbox.server import serve_tls
    from sandbox.testca import LocalCA

    ca = LocalCA(tmp_path / "ca")
    fake = make_fake(folder=tmp_path / "mitdk", ca=ca, seed=1)
    keys = fake.add_messages(generate(CVR, 7, seed=1))
    fake.add_messages(generate(OTHER_CVR, 2, seed=1))
    async with serve_tls(fake.app, ca=ca, server_name="mitdk-sandbox") as url:
        settings = Settings.model_validate({**fake.credentials(), "base_url": url + fake.base_path,
                                            "ca_file": ca.cert_path, "cvr": CVR})
        # The listing gives only id, dataSource and ownerName (§2.3): the organisation's name picks the box.
        context = ConnectorContext("mitdk", CVR, tmp_path, MemoryState(),
                                   organisation_name=fake.mailbox_for(CVR).owner_name)
        connector = MitdkConnector(settings, context)
        try:
            assert set(await collect(connector)) == set(keys)
        finally:
            await connector.aclose()
