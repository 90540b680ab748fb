"""The shared connector conformance suite, run against the fake e-Boks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import conformance
from connectors.eboks import EboksConnector
from sandbox.providers.eboks import FakeEboks

CVR = "12345674"


@pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
async def test_conformance(check: conformance.Check, fake: FakeEboks,
                           make_connector: Callable[..., EboksConnector]) -> None:
    await check(conformance.Target(lambda: make_connector(), fake, cvr=CVR, acknowledges_at_fetch=True))
