"""e-Boks logon in both modes, nonce rotation, session expiry, stale nonces and credential failures."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.base import AuthError, TransientError
from connectors.eboks import Settings
from sandbox.providers.eboks import FakeEboks
from sandbox.generator import generate

CVR = "12345674"


@pytest.fixture
def letters(fake: FakeEboks) -> list[str]:
    return fake.add_messages(generate(CVR, 12, seed=2))


@pytest.mark.parametrize("overrides", [
    {"auth_mode": "activation"},
    {"auth_mode": "rsa"},
    {"auth_mode": "rsa", "rsa_hash": "sha1"},
])
async def test_logs_on_in_each_mode(fake: FakeEboks, make_connector: Any, letters: list[str],
                                    overrides: dict[str, str]) -> None:
    connector = make_connector(**overrides)
    try:
        page = await connector.list_new(None)
    finally:
        await connector.aclose()
    assert {r.key for r in page.refs} <= set(letters) and page.refs
    (session,) = fake.sessions.values()
    assert session.rsa is (overrides["auth_mode"] == "rsa")


@pytest.mark.parametrize(("fake_options", "overrides"), [
    ({"response_check": "postboks"}, {"auth_mode": "activation", "response_style": "postboks"}),
    ({"response_check": "ha-eboks"}, {"auth_mode": "activation", "response_style": "ha-eboks"}),
    ({"response_check": "ha-eboks"}, {"auth_mode": "rsa", "response_style": "ha-eboks"}),
])
async def test_request_responses_satisfy_a_strict_server(fake: FakeEboks, make_connector: Any,
                                                         letters: list[str], overrides: dict[str, str]) -> None:
    connector = make_connector(**overrides)
    try:
        page = await connector.list_new(None)
        await connector.fetch(page.refs[0])
    finally:
        await connector.aclose()
    assert fake.logons == 1


async def test_every_answer_rotates_the_nonce_and_the_latest_is_persisted(
        fake: FakeEboks, make_connector: Any, letters: list[str], state: Any) -> None:
    # GIVEN a connector that makes many requests in one session
    connector = make_connector()
    try:
        cursor = None
        while True:
            page = await connector.list_new(cursor)
            for ref in page.refs:
                await connector.fetch(ref)
            if not page.more:
                break
            cursor = page.cursor
    finally:
        await connector.aclose()
    # THEN one logon sufficed (no request ever carried a stale nonce) and the state holds the latest
    assert fake.logons == 1
    (session,) = fake.sessions.values()
    assert state.data["session"]["nonce"] == session.nonce
    assert state.data["session"]["session_id"] == session.session_id
    assert "password" not in repr(state.data) and "0101701234" not in repr(state.data)


async def test_a_restart_resumes_the_persisted_session(fake: FakeEboks, make_connector: Any,
                                                       letters: list[str], state: Any) -> None:
    first = make_connector()
    await first.list_new(None)
    await first.aclose()
    second = make_connector()
    try:
        page = await second.list_new(None)
    finally:
        await second.aclose()
    assert page.refs and fake.logons == 1


async def test_an_expired_session_logs_on_again(fake: FakeEboks, make_connector: Any, letters: list[str],
                                                clock: Any) -> None:
    connector = make_connector()
    try:
        page = await connector.list_new(None)
        clock.now += fake.session_idle + 1  # WHEN the session idles out on the server
        fetched = await connector.fetch(page.refs[0])
    finally:
        await connector.aclose()
    assert fetched.ref == page.refs[0]
    assert fake.logons == 2


async def test_a_stale_nonce_is_refused_and_the_connector_recovers(
        fake: FakeEboks, make_connector: Any, letters: list[str], state: Any, base_url: str,
        ca: Any) -> None:
    # GIVEN a state snapshot taken right after logon, then the session moves on
    first = make_connector()
    await first.list_new(None)
    snapshot = dict(state.data)
    snapshot["session"] = dict(state.data["session"])
    await first.list_new(None)
    await first.aclose()
    stale = snapshot["session"]
    # THEN the server refuses the snapshot's nonce with 401, as the real one does
    header = (f'deviceid="{fake.device_id}",nonce="{stale["nonce"]}",sessionid="{stale["session_id"]}",'
              'response="0"')
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca.cert_path))) as http:
        answer = await http.get(f"{base_url}/{fake.user_id}/0/shares",
                                headers={"X-EBOKS-AUTHENTICATE": header})
    assert answer.status_code == 401
    # AND a connector restored from the stale snapshot logs on again and carries on
    restored = type(state)(snapshot)
    second = make_connector(store=restored)
    try:
        page = await second.list_new(None)
    finally:
        await second.aclose()
    assert page.refs
    assert fake.logons == 2
    assert restored.data["session"]["session_id"] != stale["session_id"]


async def test_bad_credentials_are_an_auth_error_without_secrets(fake: FakeEboks, make_connector: Any,
                                                                 letters: list[str]) -> None:
    connector = make_connector(password="forkert kode")
    with pytest.raises(AuthError, match="invalid login credentials") as caught:
        await connector.list_new(None)
    await connector.aclose()
    assert "10130" in str(caught.value)
    assert "forkert" not in str(caught.value) and "0101701234" not in str(caught.value)


async def test_revoked_credentials_stop_a_running_session(fake: FakeEboks, make_connector: Any,
                                                          letters: list[str]) -> None:
    connector = make_connector()
    try:
        page = await connector.list_new(None)
        fake.break_auth()
        with pytest.raises(AuthError):
            await connector.fetch(page.refs[0])
    finally:
        await connector.aclose()


async def test_a_share_the_delegate_lost_is_an_auth_error(fake: FakeEboks, make_connector: Any) -> None:
    connector = make_connector(cvr="11111111", shares={"Nedlagt Firma": "11111111"})
    with pytest.raises(AuthError, match="no active share"):
        await connector.list_new(None)
    await connector.aclose()


async def test_an_unknown_folder_is_reported(fake: FakeEboks, make_connector: Any) -> None:
    connector = make_connector(folders=("Inbox", "Findes ikke"))
    with pytest.raises(AuthError, match="no folder 'Findes ikke'"):
        await connector.list_new(None)
    await connector.aclose()


async def test_a_share_can_be_named_by_its_id_and_subfolders_are_read(fake: FakeEboks, make_connector: Any,
                                                                     letters: list[str]) -> None:
    share = fake.share_for(CVR)
    connector = make_connector(shares={share.share_id: CVR}, folders=("Inbox", "Kunder"))
    try:
        page = await connector.list_new(None)
    finally:
        await connector.aclose()
    assert page.refs


def test_settings_explain_what_is_missing(make_settings: Any) -> None:
    with pytest.raises(ValidationError, match="needs activation_code"):
        make_settings(auth_mode="activation", activation_code=None)
    with pytest.raises(ValidationError, match="needs private_key"):
        make_settings(private_key=None)
    with pytest.raises(ValidationError, match="exactly one entry in shares"):
        make_settings(cvr="99999999")
    with pytest.raises(ValidationError, match="Extra inputs"):
        make_settings(pasword="typo")


def test_settings_never_show_secrets(make_settings: Any) -> None:
    settings: Settings = make_settings()
    shown = repr(settings) + str(settings) + repr(settings.credentials())
    assert settings.password not in shown and settings.cpr not in shown
    assert "PRIVATE KEY" not in shown


async def test_a_share_withdrawn_while_running_is_reported_as_auth(fake: FakeEboks, make_connector: Any,
                                                                   letters: list[str]) -> None:
    connector = make_connector()
    try:
        await connector.list_new(None)
        del fake.shares[fake.share_for(CVR).share_id]  # the company withdraws the delegate's access
        with pytest.raises(TransientError, match="gone"):
            await connector.list_new(None)
        with pytest.raises(AuthError, match="no active share"):
            await connector.list_new(None)
    finally:
        await connector.aclose()


async def test_the_delegates_own_mailbox_is_share_0(fake: FakeEboks, make_connector: Any) -> None:
    keys = fake.add_messages(generate("99999999", 3, seed=8))
    for key in keys:  # move them to the delegate's own mailbox
        folder, message = fake.share_for("99999999").find(key)  # type: ignore[misc]
        fake.add_fake(fake.own, message)
    connector = make_connector(cvr="99999999", shares={"0": "99999999"})
    try:
        page = await connector.list_new(None)
    finally:
        await connector.aclose()
    assert {r.key for r in page.refs} == set(keys)
