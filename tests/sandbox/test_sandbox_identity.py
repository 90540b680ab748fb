"""`make run`'s "Log ind med Sandbox-login": the sandbox plays the identity provider config.example.toml
names, and its people sign in to the demo accounts (or, without one, are refused)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import httpx
import pytest

from postbud.console import accounts
from sandbox.demo import start_identity_provider
from sandbox.demo_accounts import ensure_demo_accounts
from tests.postbud.console.conftest import CHEAP
from tests.postbud.console.console_testkit import client, console_app, through_provider
from tests.postbud.ops_testkit import store_for
from tests.postbud.test_sandbox_run import example_config


async def test_the_example_config_signs_in_through_the_sandbox_identity_provider(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTBUD_DATABASE_URL", raising=False)
    monkeypatch.setattr(accounts, "_hasher", CHEAP)  # argon2's defaults cost ~0.5 s a hash here
    config = example_config(tmp_path)
    assert config.console.oidc is not None
    store = store_for(config)
    out = io.StringIO()
    ensure_demo_accounts(store, config, out=out)
    assert "Sandbox-login" in out.getvalue() and "anna as demo-admin" in out.getvalue()
    assert {u.username: u.oidc_identity for u in accounts.users(store)} == {
        "demo-admin": "anna.admin@eksempel.invalid", "demo-reception": "rasmus.reception@eksempel.invalid"}
    async with contextlib.AsyncExitStack() as stack:
        idp = await start_identity_provider(stack, config.sandbox.folder, config)
        assert idp is not None and idp.issuer == config.console.oidc.issuer
        # the config's secret is the one the fake checks, and it stays the same at the next start
        assert config.console.oidc.client_secret.reveal() == idp.client_secret
        # the example organisation admits its people from loopback only (trusted locations): the
        # provider's sign-in from elsewhere is refused too
        async with client(console_app(store, config)) as elsewhere:
            _, back = await through_provider(elsewhere, "rasmus")
            assert 'id="reason">location' in (await elsewhere.get(back)).text
        local = httpx.ASGITransport(app=console_app(store, config), client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=local, base_url="http://postbud") as c:
            assert "Log ind med Sandbox-login" in (await c.get("/console/signin")).text
            _, back = await through_provider(c, "rasmus")
            assert (await c.get(back)).status_code == 200
            assert (await c.get("/console/queue")).status_code == 200
            _, back = await through_provider(c, "ukendt")
            assert (await c.get(back)).status_code == 403
    async with contextlib.AsyncExitStack() as stack:
        again = await start_identity_provider(stack, config.sandbox.folder, config)
        assert again is not None and again.client_secret == idp.client_secret
