"""Fixtures for delivery tests: recipient keys, the real openssl/gpg tools, local SMTP servers."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from delivery_testkit import (
    Gpg,
    RecordingHandler,
    RunningSmtp,
    ServeFactory,
    SmimeRecipient,
    make_smime_cert,
)

from core.storage.db import Store
from sandbox.mailserver import serve_smtp, server_tls_context
from sandbox.testca import LocalCA
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import store_for


@pytest.fixture
def store(make_config: MakeConfig) -> Iterator[Store]:
    """A store on the test's database (SQLite, and PostgreSQL too when POSTBUD_TEST_PG is set)."""
    store = store_for(make_config())
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def smime_recipient(tmp_path_factory: pytest.TempPathFactory) -> SmimeRecipient:
    return make_smime_cert(tmp_path_factory.mktemp("smime"))


@pytest.fixture(scope="session")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl command-line tool not installed")
    return path


@pytest.fixture(scope="session")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gpg]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg command-line tool not installed")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    g = Gpg(home, b"", "bob@example.com")
    made = g.run("--passphrase", "", "--quick-gen-key", "Bob <bob@example.com>",
                 "future-default", "default", "2y")
    assert made.returncode == 0, made.stderr
    public = g.run("--armor", "--export", g.email).stdout
    yield Gpg(home, public, g.email)
    gpgconf = shutil.which("gpgconf")
    if gpgconf is not None:  # the agent gpg started for this throwaway home
        subprocess.run([gpgconf, "--kill", "gpg-agent"],
                       env={**os.environ, "GNUPGHOME": str(home)}, capture_output=True, check=False)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
async def smtp_server(test_ca: LocalCA) -> AsyncIterator[ServeFactory]:
    """Factory: a real aiosmtpd on 127.0.0.1, with STARTTLS by default (tls=False: none at all)."""
    servers = []

    async def start(*, tls: bool = True, handler: RecordingHandler | None = None,
                    authenticator: Any = None, data_size_limit: int = 1 << 26,
                    implicit_tls: bool = False, pipelining: bool = True) -> RunningSmtp:
        h = handler or RecordingHandler()
        ctx: ssl.SSLContext | None = server_tls_context(test_ca) if tls else None
        server = await serve_smtp(h, tls_context=ctx, authenticator=authenticator,
                                  data_size_limit=data_size_limit, implicit_tls=implicit_tls,
                                  pipelining=pipelining)
        servers.append(server)
        return RunningSmtp(server.sockets[0].getsockname()[1], h, test_ca.cert_path)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    """One STARTTLS server (modules that need another kind define their own `smtp`)."""
    return await smtp_server()
