"""Signing in to the console through an OpenID Connect provider: the whole authorization-code flow over
real HTTP against the sandbox's fake provider, and every way a return is refused."""

from __future__ import annotations

import json
import shlex
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlmodel import col, select
from typer.testing import CliRunner

from core.config import Config
from core.oidc_settings import OidcSettings
from core.storage.accounts import AuditEvent, ConsoleSession, OidcPending
from core.storage.db import Store
from postbud.cli.app import app
from postbud.console import accounts
from sandbox.identity import DEMO_PEOPLE, FakeIdentityProvider, _key
from sandbox.server import serve_http
from tests.conftest import MakeConfig
from tests.postbud.console.console_testkit import PASSWORD, client, console_app, sign_in, through_provider, user
from tests.postbud.ops_testkit import store_for
from tests.postbud.test_readme_examples import ROOT, commands, sh_blocks

# The checks here are on the provider's answers, not the database: SQLite only, but for the first
# flow and the CLI (also on PostgreSQL when POSTBUD_TEST_PG is set).
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
KEY = _key()  # one RSA key for every test's provider: generating one costs ~0.1 s
ANNA = DEMO_PEOPLE["anna"]["email"]


def oidc_config(make_config: MakeConfig, issuer: str, monkeypatch: pytest.MonkeyPatch, *,
                secret: str = "s3cret-of-the-client") -> Config:
    monkeypatch.setenv("TEST_OIDC_SECRET", secret)
    return make_config(extra=f"""[console]
enabled = true
[console.oidc]
issuer = "{issuer}"
client_id = "postbud-console"
client_secret = {{ env = "TEST_OIDC_SECRET" }}
display_name = "Firma-login"
""")


@dataclass
class Setup:
    idp: FakeIdentityProvider
    config: Config
    store: Store


@pytest.fixture
async def setup(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    idp = FakeIdentityProvider(client_id="postbud-console", client_secret="s3cret-of-the-client", key=KEY)
    async with serve_http(idp.app, server_name="idp-test") as issuer:
        config = oidc_config(make_config, issuer, monkeypatch)
        store = store_for(config)
        # linked in other letter case: an e-mail identity is compared in lower case
        accounts.add_user(store, "anna", None, profile="processing", organisations=["12345678"],
                          oidc_identity=ANNA.upper(), language="en")
        yield Setup(idp, config, store)


def audit_rows(store: Store) -> list[AuditEvent]:
    with store.read() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.at))))


async def test_a_linked_identity_signs_in_to_its_account_with_pkce_state_and_nonce(setup: Setup) -> None:
    async with client(console_app(setup.store, setup.config)) as c:
        # GIVEN the sign-in page offers the provider
        page = await c.get("/console/signin")
        assert 'id="signin-oidc"' in page.text and "Firma-login" in page.text
        # WHEN Anna goes through the provider
        authorize, back = await through_provider(c)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
        assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
        assert query["redirect_uri"] == ["http://postbud/console/signin/oidc/callback"]
        assert all(len(query[k][0]) >= 40 for k in ("state", "nonce", "code_challenge"))
        assert "openid" in query["scope"][0].split()
        returned = await c.get(back)
        # THEN she is signed in to her local account, its profile postbud's own
        assert returned.status_code == 200, returned.text
        assert 'http-equiv="refresh" content="0;url=/console/queue"' in returned.text
        cookie = next(v for k, v in returned.headers.multi_items() if k == "set-cookie" and "postbud_console=" in v)
        assert "samesite=strict" in cookie.lower() and "httponly" in cookie.lower()
        assert (await c.get("/console/queue")).status_code == 200
        # the same return once more is not honoured
        assert (await c.get(back)).status_code == 400
    assert setup.idp.tokens_issued == 1
    signin = [e for e in audit_rows(setup.store) if e.action == "signin"]
    assert [(e.username, e.detail, e.address) for e in signin] == [
        ("anna", {"method": "oidc", "identity": ANNA}, "10.0.0.7")]
    with setup.store.read() as session:
        assert list(session.exec(select(OidcPending))) == []


@SQLITE_ONLY
async def test_a_return_with_another_state_is_refused(setup: Setup) -> None:
    async with client(console_app(setup.store, setup.config)) as c:
        _, back = await through_provider(c)
        forged = back.replace("state=", "state=x")
        refused = await c.get(forged)
        assert refused.status_code == 400 and "postbud_console" not in refused.headers.get("set-cookie", "")
        assert (await c.get("/console/queue")).status_code == 303
    # a return reaching another browser (no attempt cookie) is refused too
    async with client(console_app(setup.store, setup.config)) as other:
        _, back = await through_provider(other)
        other.cookies.clear()
        assert (await other.get(back)).status_code == 400
    assert [e.detail["reason"] for e in audit_rows(setup.store) if e.action == "signin_refused"] == ["state", "state"]
    assert setup.idp.tokens_issued == 0  # no code was redeemed


@SQLITE_ONLY
@pytest.mark.parametrize(("changes", "rogue", "reason"), [
    ({"nonce": "a-nonce-of-another-attempt"}, False, "nonce"),
    ({"aud": "another-client"}, False, "audience"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, False, "expired"),
    ({}, True, "signature"),
    ({"iss": "https://impostor.example"}, False, "issuer"),
    ({"email_verified": False}, False, "unverified"),
])
async def test_an_id_token_that_fails_a_check_signs_nobody_in(setup: Setup, changes: dict[str, Any], rogue: bool,
                                                              reason: str) -> None:
    setup.idp.claim_changes = changes
    setup.idp.rogue_key = rogue
    async with client(console_app(setup.store, setup.config)) as c:
        _, back = await through_provider(c)
        refused = await c.get(back)
        assert refused.status_code == 400
        assert 'id="reason">' + reason in refused.text
        assert "postbud_console" not in refused.headers.get("set-cookie", "")
        assert (await c.get("/console/queue")).status_code == 303
    assert setup.idp.tokens_issued == 1
    refusals = [e for e in audit_rows(setup.store) if e.action.startswith("signin")]
    assert [(e.action, e.username, e.detail["method"], e.detail["reason"]) for e in refusals] == [
        ("signin_refused", "?", "oidc", reason)]


@SQLITE_ONLY
async def test_an_unknown_identity_is_refused_with_a_clear_page_and_audited(setup: Setup) -> None:
    async with client(console_app(setup.store, setup.config)) as c:
        _, back = await through_provider(c, "ukendt")
        refused = await c.get(back)
    assert refused.status_code == 403
    assert "ukendt@eksempel.invalid" in refused.text and "Bed en administrator" in refused.text
    assert [(e.action, e.username, e.detail) for e in audit_rows(setup.store) if e.action.startswith("signin")] == [
        ("signin_refused", "ukendt@eksempel.invalid",
         {"method": "oidc", "identity": "ukendt@eksempel.invalid", "reason": "unknown identity"})]
    with setup.store.read() as session:
        assert list(session.exec(select(ConsoleSession))) == []


@SQLITE_ONLY
async def test_a_disabled_account_is_refused_and_a_cancel_at_the_provider_too(setup: Setup) -> None:
    accounts.disable(setup.store, "anna", actor="test")
    async with client(console_app(setup.store, setup.config)) as c:
        _, back = await through_provider(c)
        refused = await c.get(back)
        # in the language of the sign-in page it started from
        assert refused.status_code == 403 and "Kontoen er spærret" in refused.text
        _, back = await through_provider(c, "cancel")
        cancelled = await c.get(back)
        assert cancelled.status_code == 400 and "loggede dig ikke ind" in cancelled.text
    rows = [(e.action, e.username, e.detail.get("reason")) for e in audit_rows(setup.store) if e.action.startswith("signin")]
    assert rows == [("signin_disabled", "anna", None), ("signin_refused", "?", "cancelled")]


@SQLITE_ONLY
async def test_an_account_without_a_password_takes_none_and_an_unreachable_provider_is_a_clear_error(
        setup: Setup, make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(console_app(setup.store, setup.config)) as c:
        for password in ("!", PASSWORD, ""):
            assert (await sign_in(c, "anna", password)).status_code == 401
    gone = oidc_config(make_config, "http://127.0.0.1:9", monkeypatch)
    async with client(console_app(setup.store, gone)) as c:
        unreachable = await c.get("/console/signin/oidc")
    assert unreachable.status_code == 502 and 'id="reason">provider' in unreachable.text


@SQLITE_ONLY
async def test_without_oidc_the_sign_in_page_has_no_button(make_config: MakeConfig) -> None:
    config = make_config(extra="[console]\nenabled = true")
    store = store_for(config)
    user(store, "ib", "processing")
    async with client(console_app(store, config)) as c:
        assert "signin-oidc" not in (await c.get("/console/signin")).text
        assert (await c.get("/console/signin/oidc")).headers["location"] == "/console/signin"


def test_oidc_settings_refuse_plain_http_to_another_host_and_scopes_without_openid() -> None:
    base = {"client_id": "c", "client_secret": {"env": "X"}}
    assert OidcSettings.model_validate({**base, "issuer": "https://login.example.dk/realms/x/"}).issuer == \
        "https://login.example.dk/realms/x"
    with pytest.raises(ValidationError, match="issuer must start with https://"):
        OidcSettings.model_validate({**base, "issuer": "http://login.example.dk"})
    with pytest.raises(ValidationError, match="openid"):
        OidcSettings.model_validate({**base, "issuer": "https://login.example.dk", "scopes": ["email"]})


def test_users_cli_links_and_unlinks_identities(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    config = make_config(extra="[console]\nenabled = true")
    path = str(config.path)
    monkeypatch.delenv("POSTBUD_USER_PASSWORD", raising=False)
    added = runner.invoke(app, ["-c", path, "users", "add", "mette", "--profile", "feedback", "--org", "12345678",
                                "--oidc", "Mette@Firma.dk", "--no-password"])
    assert added.exit_code == 0, added.output
    monkeypatch.setenv("POSTBUD_USER_PASSWORD", PASSWORD)
    assert runner.invoke(app, ["-c", path, "users", "add", "ib", "--profile", "processing", "--org",
                               "12345678"]).exit_code == 0
    # one identity, one account
    taken = runner.invoke(app, ["-c", path, "users", "link", "ib", "mette@firma.dk"])
    assert taken.exit_code == 1 and "linked to user mette already" in taken.output
    nothing = runner.invoke(app, ["-c", path, "users", "add", "bo", "--profile", "full", "--org", "12345678",
                                  "--no-password"])
    assert nothing.exit_code == 2 and "--no-password needs --oidc" in nothing.output
    assert runner.invoke(app, ["-c", path, "users", "link", "ib", "8d0c2f1e-ib"]).exit_code == 0
    listed = {u["username"]: u["oidc"] for u in json.loads(runner.invoke(app, ["-c", path, "users", "list", "--json"]).stdout)}
    assert listed == {"ib": "8d0c2f1e-ib", "mette": "mette@firma.dk"}
    assert runner.invoke(app, ["-c", path, "users", "unlink", "mette"]).exit_code == 0
    assert accounts.sign_in_identity(store_for(config), "mette@firma.dk", address=None, detail={}).refused == "unknown"
    unknown = runner.invoke(app, ["-c", path, "users", "link", "nobody", "x@y.dk"])
    assert unknown.exit_code == 1 and "no user nobody" in unknown.output


@SQLITE_ONLY
def test_the_readme_commands_link_and_unlink(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(extra="[console]\nenabled = true")
    accounts.add_user(store_for(config), "demo-admin", PASSWORD, profile="administrator", organisations=["12345678"])
    monkeypatch.delenv("POSTBUD_USER_PASSWORD", raising=False)
    block = next(b for b in sh_blocks(ROOT / "README.md") if "users link" in b)
    runner = CliRunner()
    for command in commands(block):
        argv = shlex.split(command)
        assert argv[0] == "postbud"
        result = runner.invoke(app, ["-c", str(config.path), *argv[1:]])
        assert result.exit_code == 0, (command, result.output)
    linked = {u.username: u.oidc_identity for u in accounts.users(store_for(config))}
    assert linked == {"demo-admin": None, "mette": "mette@eksempel.dk"}
