"""Collecting whole fake e-Boks mailboxes: complete, exactly once, through injected faults."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox.providers.eboks import FakeEboks
from sandbox.faults import Fault
from sandbox.generator import generate
from sandbox.state import MemoryState
from core.domain import MessageType

CVR = "12345674"
OTHER_CVR = "87654328"


@pytest.mark.slow  # 15-25 s on this machine, mostly PDF text extraction and RSA request signatures
async def test_collects_a_mailbox_of_1000_completely_and_exactly_once(
        fake: FakeEboks, make_connector: Any, collect: Any) -> None:
    # GIVEN 1,000 letters for our company and 5 for another company the delegate also reaches
    messages = generate(CVR, 1000, seed=3)
    keys = fake.add_messages(messages)
    fake.add_messages(generate(OTHER_CVR, 5, seed=4))
    connector = make_connector(page_size=100)
    started = time.perf_counter()
    # WHEN the collector runs
    try:
        collected = await collect(connector)
        # THEN every letter arrives once, each downloaded once and acknowledged
        assert set(collected) == set(keys)
        assert all(n == 1 for k, n in fake.fetch_counts().items() if k in set(keys))
        assert fake.acknowledged() >= set(keys)
        # AND a second run finds nothing new
        assert await collect(connector) == {}
    finally:
        await connector.aclose()
    elapsed = time.perf_counter() - started
    print(f"e-Boks: 1000 messages in {elapsed:.1f} s")
    by_id = {m.message_id: m for m in messages}
    sample = collected[keys[0]].message
    assert sample.message_type is MessageType.DIGITALPOST
    assert sample.title == by_id[keys[0]].title
    assert sample.recipient.id == CVR
    assert fake.logons == 1


@pytest.mark.parametrize("fake_options", [{"content_error_rate": 0.05, "seed": 11}])
async def test_collects_exactly_once_through_random_faults(
        fake: FakeEboks, make_connector: Any, collect: Any) -> None:
    # GIVEN 120 letters and a provider failing 15 % of requests in every way it can
    keys = fake.add_messages(generate(CVR, 120, seed=5))
    fake.faults.set_rate(0.15, (Fault.latency(0.01), Fault.rate_limited(1), Fault.server_error(),
                                Fault.unavailable(1), Fault.non_json(), Fault.truncated()))
    connector = make_connector(page_size=25)
    try:
        # WHEN the collector runs, retrying what is transient
        collected = await collect(connector, attempts=500)
    finally:
        await connector.aclose()
    # THEN every letter was committed once and acknowledged; faults really happened
    assert set(collected) == set(keys)
    assert fake.acknowledged() >= set(keys)
    assert len(fake.faults.applied) > 10


async def test_the_sandbox_factory_serves_a_collectable_mailbox(tmp_path: Any, collect: Any) -> None:
    """`make_fake` as `postbud sandbox` calls it, configured only from `credentials()`."""
    from connectors.base import ConnectorContext
    from connectors.eboks import EboksConnector, Settings
    from sandbox.providers.eboks import make_fake
    from sandbox.server import serve_tls
    from sandbox.testca import LocalCA

    ca = LocalCA(tmp_path / "ca")
    fake = make_fake(folder=tmp_path / "eboks", ca=ca, seed=1)
    keys = fake.add_messages(generate(CVR, 7, seed=1))
    creds = fake.credentials()
    assert (tmp_path / "eboks" / "device-key.pem").stat().st_mode & 0o077 == 0
    async with serve_tls(fake.app, ca=ca, server_name="eboks-sandbox") as url:
        settings = Settings.model_validate({
            **creds, "base_url": url + fake.base_path, "ca_file": ca.cert_path, "cvr": CVR,
            "shares": {fake.share_for(CVR).share_id: CVR},
        })
        connector = EboksConnector(settings, ConnectorContext("eboks", CVR, tmp_path, MemoryState()))
        try:
            assert set(await collect(connector)) == set(keys)
        finally:
            await connector.aclose()
