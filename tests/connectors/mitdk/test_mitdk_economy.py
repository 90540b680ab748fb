"""Issue 14 finding 7 (mit.dk): tokens refreshed only when needed; no stale If-Match after a retry."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import TransientError
from sandbox.faults import Fault
from sandbox.generator import generate
from sandbox.providers.mitdk import FakeMitdk

CVR = "12345674"


@pytest.mark.parametrize("fake_options", [{"token_ttl": 60.0}])
async def test_tokens_shorter_lived_than_the_margin_are_not_refreshed_at_every_call(
        fake: FakeMitdk, make_connector: Any, clock: Any) -> None:
    fake.add_messages(generate(CVR, 3, seed=4))
    connector = make_connector()  # refresh_margin 120 s, tokens live 60 s
    try:
        for _ in range(10):
            await connector.list_new(None)
        assert fake.refreshes == 1  # the first use only
        clock.now += 35  # past half the tokens' life: now one refresh is due
        await connector.list_new(None)
        await connector.list_new(None)
        assert fake.refreshes == 2
    finally:
        await connector.aclose()


async def test_a_retried_mark_read_does_not_resend_a_stale_if_match(fake: FakeMitdk, make_connector: Any) -> None:
    fake.add_messages(generate(CVR, 1, seed=5))
    connector = make_connector()
    try:
        (ref,) = (await connector.list_new(None)).refs
        await connector.fetch(ref)
        # The PATCH reaches mit.dk (read, version bumped) but its answer is cut off.
        fake.faults.inject(Fault.truncated(), path="/messages/", method="PATCH")
        with pytest.raises(TransientError):
            await connector.acknowledge(ref)
        await connector.acknowledge(ref)  # the collector's retry
    finally:
        await connector.aclose()
    assert fake.stale_if_match == 0
    assert fake.acknowledged() == {ref.key}
