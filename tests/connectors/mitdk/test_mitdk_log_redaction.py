"""At DEBUG, with the HTTP libraries logging every header, no mit.dk token reaches the log."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.generator import generate
from sandbox.providers.mitdk import FakeMitdk
from tests.connectors.mitdk.conftest import CVR
from tests.debug_logs import debug_logs as debug_logs  # noqa: F401 - the fixture


async def test_access_and_refresh_tokens_never_reach_the_debug_log(
    fake: FakeMitdk, make_connector: Any, collect: Any, debug_logs: None, capsys: pytest.CaptureFixture[str],
) -> None:
    keys = fake.add_messages(generate(CVR, 3, seed=9))
    connector = make_connector()
    try:
        collected = await collect(connector)
    finally:
        await connector.aclose()
    assert set(collected) == set(keys)
    output = capsys.readouterr().err
    assert "authorization" in output.lower()  # the header is logged at DEBUG ...
    # The client id is public (it names the app); the tokens are the secrets.
    secrets = [*fake.chain.access, fake.chain.dpp_refresh, fake.chain.ngdp_refresh, *fake.initial_refresh]
    leaked = [s for s in secrets if s in output]
    assert leaked == [], "tokens in the log"  # ... its value never
