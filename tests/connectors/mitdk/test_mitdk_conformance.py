"""The shared connector conformance suite, run against the fake mit.dk."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import conformance
from connectors.mitdk import MitdkConnector
from sandbox.providers.mitdk import FakeMitdk

CVR = "12345674"


@pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
async def test_conformance(check: conformance.Check, fake: FakeMitdk,
                           make_connector: Callable[..., MitdkConnector]) -> None:
    await check(conformance.Target(lambda: make_connector(), fake, cvr=CVR))
