"""The NgDP connector passes the connector conformance suite against its fake, for both list modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import conformance
from connectors.ngdp.connector import NgdpConnector, Settings
from sandbox.providers.ngdp import NgdpFake, make_fake
from sandbox.server import serve_tls
from sandbox.testca import LocalCA

CVR = "12345674"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[NgdpFake, str, LocalCA]]:
    ca = LocalCA(tmp_path / "ca")
    fake = make_fake(folder=tmp_path / "ngdp", ca=ca, seed=3)
    async with serve_tls(fake.app, ca=ca, client_certs=fake.client_certs) as base:
        yield fake, base + fake.base_path, ca


def _maker(fake: NgdpFake, base_url: str, ca: LocalCA, **extra: object) -> conformance.ConnectorMaker:
    creds = fake.credentials()
    settings = Settings(base_url=base_url, system_id=creds["system_id"], api_token=creds["api_token"],
                        client_cert=Path(creds["client_cert"]), client_key=Path(creds["client_key"]),
                        ca_file=ca.cert_path, page_size=10, read_timeout=5.0, **extra)
    return lambda: NgdpConnector(settings)


@pytest.mark.parametrize("mode", [{}, {"cvrs": (CVR,), "business_receipt": True}],
                         ids=["all-cvrs", "filtered-with-receipt"])
@pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_id)
async def test_ngdp_conformance(check: conformance.Check, mode: dict[str, object],
                                served: tuple[NgdpFake, str, LocalCA]) -> None:
    fake, base_url, ca = served
    await check(conformance.Target(_maker(fake, base_url, ca, **mode), fake, cvr=CVR))


async def test_run_conformance_reports_every_check(served: tuple[NgdpFake, str, LocalCA]) -> None:
    fake, base_url, ca = served
    report = await conformance.run_conformance(_maker(fake, base_url, ca), fake, cvr=CVR)
    assert report.ok, report.failed
    assert report.passed == [conformance.check_id(c) for c in conformance.CHECKS]
