"""GIVEN wrong credentials of each kind WHEN the connector calls NgDP THEN it raises AuthError."""

from __future__ import annotations

from pathlib import Path

import pytest
from ngdp_env import CVR, Ngdp

from connectors.base import AuthError, TransientError
from sandbox.generator import generate
from sandbox.testca import LocalCA


async def _expect_auth_error(ngdp: Ngdp, **overrides: object) -> AuthError:
    ngdp.fake.add_messages(generate(CVR, 1, seed=1))
    connector = ngdp.connector(**overrides)
    try:
        with pytest.raises(AuthError) as caught:
            await connector.list_new(None)
    finally:
        await connector.aclose()
    return caught.value


async def test_wrong_api_token(ngdp: Ngdp) -> None:
    error = await _expect_auth_error(ngdp, api_token="not-the-token")
    assert "401" in str(error)
    assert "not-the-token" not in str(error)


async def test_wrong_system_id(ngdp: Ngdp) -> None:
    await _expect_auth_error(ngdp, system_id="00000000-0000-4000-8000-000000000000")


async def test_certificate_of_another_system_is_forbidden(ngdp: Ngdp) -> None:
    other = ngdp.ca.issue("some-other-system", client=True)
    error = await _expect_auth_error(ngdp, client_cert=other.cert_path, client_key=other.key_path)
    assert "403" in str(error)


async def test_certificate_from_an_unknown_ca_reset_under_tls13_is_transient(ngdp: Ngdp,
                                                                              tmp_path: Path) -> None:
    # Under TLS 1.3 the server may just reset the connection: indistinguishable from the network.
    ngdp.fake.add_messages(generate(CVR, 1, seed=1))
    stranger = LocalCA(tmp_path / "stranger").issue("ngdp-system-x", client=True)
    connector = ngdp.connector(client_cert=stranger.cert_path, client_key=stranger.key_path)
    try:
        with pytest.raises(TransientError):
            await connector.list_new(None)
    finally:
        await connector.aclose()


async def test_missing_certificate_file(ngdp: Ngdp, tmp_path: Path) -> None:
    error = await _expect_auth_error(ngdp, client_cert=tmp_path / "absent.pem")
    assert "system certificate" in str(error)


async def test_server_not_trusted(ngdp: Ngdp, tmp_path: Path) -> None:
    other_ca = LocalCA(tmp_path / "other-ca")
    error = await _expect_auth_error(ngdp, ca_file=other_ca.cert_path)
    assert "not trusted" in str(error)


async def test_the_token_is_not_in_the_settings_repr(ngdp: Ngdp) -> None:
    settings = ngdp.settings()
    assert settings.api_token not in repr(settings)
