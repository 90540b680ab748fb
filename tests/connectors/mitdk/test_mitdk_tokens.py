"""The mit.dk token pair: refreshed before expiry and on 401, rotated, persisted, never logged."""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.base import AuthError, TransientError
from sandbox.providers.mitdk import FakeMitdk
from sandbox.faults import Fault
from sandbox.generator import generate

CVR = "12345674"


@pytest.fixture
def letters(fake: FakeMitdk) -> list[str]:
    return fake.add_messages(generate(CVR, 6, seed=2))


async def test_first_use_refreshes_and_persists_the_rotated_pair(fake: FakeMitdk, make_connector: Any,
                                                                  letters: list[str], state: Any) -> None:
    connector = make_connector()
    try:
        page = await connector.list_new(None)
    finally:
        await connector.aclose()
    assert {r.key for r in page.refs} == set(letters)
    stored = state.data["tokens"]
    # THEN the new refresh tokens (not the configured ones) are what the state holds
    assert stored["dpp"]["refresh_token"] == fake.chain.dpp_refresh
    assert stored["ngdp"]["refresh_token"] == fake.chain.ngdp_refresh
    assert stored["dpp"]["refresh_token"] != fake.initial_refresh[0]
    assert stored["dpp"]["expires_on"] == pytest.approx(fake.clock() + fake.token_ttl, abs=1)


async def test_tokens_are_refreshed_before_they_expire(fake: FakeMitdk, make_connector: Any,
                                                       letters: list[str], clock: Any) -> None:
    connector = make_connector(refresh_margin=120)
    try:
        await connector.list_new(None)
        clock.now += fake.token_ttl - 60  # WHEN the tokens are within the margin of expiry
        await connector.list_new(None)
    finally:
        await connector.aclose()
    # THEN they were refreshed ahead of time: mit.dk never had to refuse a request
    assert fake.refreshes == 2
    assert fake.unauthorized == 0


async def test_an_access_token_refused_early_is_refreshed_and_the_call_retried(
        fake: FakeMitdk, make_connector: Any, letters: list[str]) -> None:
    connector = make_connector()
    try:
        page = await connector.list_new(None)
        fake.revoke_access()  # the server forgot our session well before expires_on
        fetched = await connector.fetch(page.refs[0])
    finally:
        await connector.aclose()
    assert fetched.ref == page.refs[0]
    assert fake.unauthorized == 1 and fake.refreshes == 2


async def test_a_restart_continues_the_chain_from_the_state(fake: FakeMitdk, make_connector: Any,
                                                            letters: list[str], clock: Any) -> None:
    first = make_connector()
    await first.list_new(None)
    await first.aclose()
    clock.now += fake.token_ttl + 3600  # long after expires_on: the refresh token still works
    second = make_connector()
    try:
        assert (await second.list_new(None)).refs
    finally:
        await second.aclose()
    assert fake.refreshes == 2


async def test_a_lost_rotation_is_an_auth_error(fake: FakeMitdk, make_connector: Any, letters: list[str],
                                                state: Any) -> None:
    # GIVEN the chain moved on, but this instance's state was lost (only the configured tokens remain)
    first = make_connector()
    await first.list_new(None)
    await first.aclose()
    fresh = type(state)()
    second = make_connector(store=fresh)
    # THEN the retired refresh token is refused, and that asks for a new onboarding
    with pytest.raises(AuthError, match="onboard this mailbox again"):
        await second.list_new(None)
    await second.aclose()


async def test_a_new_onboarding_replaces_the_stored_chain(fake: FakeMitdk, make_connector: Any,
                                                          letters: list[str], state: Any) -> None:
    first = make_connector()
    await first.list_new(None)
    await first.aclose()
    # WHEN the operator onboards again and configures the new tokens
    fake.chain.dpp_refresh, fake.chain.ngdp_refresh = "new-dpp-refresh", "new-ngdp-refresh"
    second = make_connector(dpp_refresh_token="new-dpp-refresh", ngdp_refresh_token="new-ngdp-refresh")
    try:
        assert (await second.list_new(None)).refs
    finally:
        await second.aclose()


async def test_revoked_credentials_are_an_auth_error(fake: FakeMitdk, make_connector: Any,
                                                     letters: list[str]) -> None:
    connector = make_connector()
    try:
        await connector.list_new(None)
        fake.break_auth()
        with pytest.raises(AuthError):
            await connector.list_new(None)
    finally:
        await connector.aclose()


@pytest.mark.parametrize("fault", [Fault.rate_limited(5), Fault.unavailable(), Fault.non_json(),
                                   Fault.server_error()], ids=lambda f: f.kind.value)
async def test_a_failed_refresh_is_transient_and_keeps_the_chain(fake: FakeMitdk, make_connector: Any,
                                                                 letters: list[str], fault: Fault) -> None:
    connector = make_connector()
    try:
        fake.faults.inject(fault, path="/authorization/refresh")
        with pytest.raises(TransientError):
            await connector.list_new(None)
        assert (await connector.list_new(None)).refs
    finally:
        await connector.aclose()


async def test_tokens_never_reach_the_log(fake: FakeMitdk, make_connector: Any, letters: list[str],
                                          caplog: pytest.LogCaptureFixture, state: Any) -> None:
    caplog.set_level(logging.DEBUG)
    connector = make_connector()
    try:
        page = await connector.list_new(None)
        fake.revoke_access()
        await connector.fetch(page.refs[0])
        await connector.acknowledge(page.refs[0])
    finally:
        await connector.aclose()
    secrets = [t["access_token"] for t in state.data["tokens"].values()]
    secrets += [t["refresh_token"] for t in state.data["tokens"].values()] + list(fake.initial_refresh)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refreshed" in logged
    assert not [s for s in secrets if s in logged]


def test_settings_never_show_tokens(make_settings: Any) -> None:
    settings = make_settings()
    shown = repr(settings) + str(settings)
    assert settings.dpp_refresh_token not in shown and settings.ngdp_refresh_token not in shown


def test_settings_reject_unknown_keys_and_bad_cvr(make_settings: Any) -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        make_settings(refresh_tokn="x")
    with pytest.raises(ValidationError, match="8 digits"):
        make_settings(cvr="1234")


async def test_an_onboarding_code_yields_a_pair_the_connector_can_use(
        fake: FakeMitdk, make_connector: Any, letters: list[str], base_url: str, ca: Any) -> None:
    # GIVEN a finished MitID login: an authorization code bound to our PKCE verifier
    verifier = "k" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = fake.issue_code(challenge)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca.cert_path))) as http:
        params = {"grant_type": "authorization_code", "client_id": fake.client_id, "code": code,
                  "code_verifier": verifier, "redirect_uri": "https://post.mit.dk/main"}
        wrong = await http.post(f"{base_url}/authorization/token", params={**params, "code_verifier": "x" * 64})
        assert wrong.status_code == 400  # the code is spent even by a failed attempt
        code = fake.issue_code(challenge)
        answer = await http.post(f"{base_url}/authorization/token", params={**params, "code": code})
    assert answer.status_code == 200
    pair = answer.json()
    # THEN its refresh tokens seed a working connector
    connector = make_connector(dpp_refresh_token=pair["refresh_token"],
                               ngdp_refresh_token=pair["ngdp"]["refresh_token"])
    try:
        assert (await connector.list_new(None)).refs
    finally:
        await connector.aclose()


async def test_a_wrong_server_certificate_is_an_auth_error(fake: FakeMitdk, make_connector: Any, letters: list[str],
                                                          tmp_path: Any) -> None:
    from sandbox.testca import LocalCA

    other = LocalCA(tmp_path / "other-ca")
    connector = make_connector(ca_file=other.cert_path)
    try:
        with pytest.raises(AuthError, match="did not verify"):
            await connector.list_new(None)
    finally:
        await connector.aclose()
    with pytest.raises(AuthError, match="ca_file"):
        make_connector(ca_file=tmp_path / "missing.pem")
