"""Fixtures for the e-Boks connector tests: the fake over real TLS on 127.0.0.1 and connector factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.base import Connector, ConnectorContext, Fetched, TransientError
from connectors.eboks import EboksConnector, Settings
from sandbox.providers.eboks import FakeEboks
from sandbox.server import serve_tls
from sandbox.state import MemoryState
from sandbox.testca import LocalCA

CVR = "12345674"
OTHER_CVR = "87654328"
CPR = "0101701234"
PASSWORD = "mobil-kode 1"
DEVICE = "6F1C5D0E-0A4B-4E61-9C1E-3D2B7A9F0E11"
ACTIVATION = "Ak7Pq2Zx"




class Clock:
    """A hand-driven monotonic clock for the fake's session expiry."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode("ascii")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_options() -> dict[str, Any]:
    """Overridden by tests (through parametrize or a local fixture) to configure the fake."""
    return {}


@pytest.fixture
def fake(rsa_key: rsa.RSAPrivateKey, clock: Clock, fake_options: dict[str, Any]) -> FakeEboks:
    public = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    fake = FakeEboks(cpr=CPR, password=PASSWORD, device_id=DEVICE, activation_code=ACTIVATION,
                     public_key_pem=public, clock=clock, **fake_options)
    fake.share_for(CVR, "Testfirma ApS")
    fake.share_for(OTHER_CVR, "Andet Firma A/S")
    return fake


@pytest.fixture
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.getbasetemp() / "eboks-ca")


@pytest.fixture
async def base_url(fake: FakeEboks, ca: LocalCA) -> AsyncIterator[str]:
    async with serve_tls(fake.app, ca=ca, server_name="fake-eboks") as url:
        yield f"{url}/mobile/1/xml.svc/en-gb"


MakeSettings = Callable[..., Settings]
MakeConnector = Callable[..., EboksConnector]


@pytest.fixture
def make_settings(base_url: str, ca: LocalCA, fake: FakeEboks, rsa_pem: str) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "base_url": base_url,
            "ca_file": ca.cert_path,
            "auth_mode": "rsa",
            "cpr": CPR,
            "password": PASSWORD,
            "device_id": DEVICE,
            "activation_code": ACTIVATION,
            "private_key": rsa_pem,
            "cvr": CVR,
            "shares": {"Testfirma ApS": CVR, fake.share_for(OTHER_CVR).share_id: OTHER_CVR},
            "page_size": 10,
        }
        values.update(overrides)
        return Settings.model_validate(values)

    return make


@pytest.fixture
def state() -> MemoryState:
    return MemoryState()


@pytest.fixture
def make_connector(make_settings: MakeSettings, state: MemoryState, tmp_path: Path) -> MakeConnector:
    def make(*, store: MemoryState | None = None, **overrides: Any) -> EboksConnector:
        context = ConnectorContext(mailbox="eboks", organisation=CVR, base_dir=tmp_path,
                                   state=store if store is not None else state)
        return EboksConnector(make_settings(**overrides), context)

    return make


Collect = Callable[..., Awaitable[dict[str, Fetched]]]


@pytest.fixture
def collect() -> Collect:
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
