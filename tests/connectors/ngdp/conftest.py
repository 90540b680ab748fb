"""Fixtures: a fake NgDP served over mutual TLS on 127.0.0.1, and connectors configured against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ngdp_env import Ngdp

from sandbox.providers.ngdp import make_fake
from sandbox.server import serve_tls
from sandbox.testca import LocalCA


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "ca")


@pytest.fixture
async def ngdp(tmp_path: Path, ca: LocalCA) -> AsyncIterator[Ngdp]:
    fake = make_fake(folder=tmp_path / "ngdp", ca=ca, seed=1)
    async with serve_tls(fake.app, ca=ca, client_certs=fake.client_certs) as base:
        yield Ngdp(fake, base + fake.base_path, ca)
