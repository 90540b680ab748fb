"""At DEBUG, with the HTTP libraries logging every header, no e-Boks credential reaches the log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sandbox.generator import generate
from sandbox.providers.eboks import FakeEboks
from tests.connectors.eboks.conftest import ACTIVATION, CPR, CVR, PASSWORD
from tests.debug_logs import debug_logs as debug_logs  # noqa: F401 - the fixture


async def test_session_ids_nonces_passwords_and_cpr_never_reach_the_debug_log(
    fake: FakeEboks, make_connector: Any, collect: Any, debug_logs: None, capsys: pytest.CaptureFixture[str],
) -> None:
    nonces: list[str] = []
    keys = fake.add_messages(generate(CVR, 3, seed=8))
    connector = make_connector()
    try:
        collected = await collect(connector)
        nonces += [s.nonce for s in fake.sessions.values()]
    finally:
        await connector.aclose()
    assert set(collected) == set(keys)
    output = capsys.readouterr().err
    assert "x-eboks-authenticate" in output.lower()  # the header is logged (DEBUG is on) ...
    secrets = [PASSWORD, CPR, ACTIVATION, *fake.sessions, *nonces]
    leaked = [s for s in secrets if s and s in output]
    assert leaked == [], "credentials in the log"  # ... its value never
    assert not re.search(r"sessionid=\"?[0-9a-f]{8}-", output)
    assert not re.search(r"nonce=\"?[0-9a-f]{32}", output)
