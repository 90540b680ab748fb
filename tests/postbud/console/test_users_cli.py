"""`postbud users add|list|disable|set-profile`, and the console mounted on the daemon's listener."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from core.storage.accounts import ConsoleSession, ConsoleUser
from postbud.cli.app import app
from postbud.console import accounts
from postbud.daemon import Daemon
from postbud.runtime import Runtime
from tests.conftest import MakeConfig
from tests.postbud.console.console_testkit import PASSWORD, client, console_app, sign_in
from tests.postbud.ops_testkit import store_for
from tests.postbud.test_daemon import free_port

runner = CliRunner()


async def test_users_add_list_set_profile_disable(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(extra="[console]\nenabled = true")
    path = str(config.path)
    monkeypatch.setenv("POSTBUD_USER_PASSWORD", PASSWORD)
    added = runner.invoke(app, ["-c", path, "users", "add", "ib", "--profile", "processing", "--org", "Test ApS"])
    assert added.exit_code == 0, added.output
    assert "user ib added (processing: 12345678)" in added.output
    # the password never goes on the command line; a bad profile or organisation is refused with the choices
    bad = runner.invoke(app, ["-c", path, "users", "add", "bo", "--profile", "boss", "--org", "12345678"])
    assert bad.exit_code == 1 and "unknown profile 'boss'" in bad.output and "processing+archive" in bad.output
    bad = runner.invoke(app, ["-c", path, "users", "add", "bo", "--profile", "full", "--org", "99999999"])
    assert bad.exit_code == 1 and "not in the configuration" in bad.output
    listed = json.loads(runner.invoke(app, ["-c", path, "users", "list", "--json"]).stdout)
    assert [(u["username"], u["profile"], u["organisations"], u["disabled"]) for u in listed] == [
        ("ib", "processing", ["12345678"], False)]
    assert "argon2" not in runner.invoke(app, ["-c", path, "users", "list"]).output

    store = store_for(config)
    async with client(console_app(store, config)) as c:
        assert (await sign_in(c, "ib")).status_code == 303
        changed = runner.invoke(app, ["-c", path, "users", "set-profile", "ib", "feedback"])
        assert changed.exit_code == 0 and "user ib is now feedback" in changed.output
        # the old rights end with the old session
        assert (await c.get("/console/queue")).status_code == 303
        await sign_in(c, "ib")
        assert (await c.get("/console/queue")).status_code == 404
        assert (await c.get("/console/stats")).status_code == 200
        assert runner.invoke(app, ["-c", path, "users", "disable", "ib"]).exit_code == 0
        assert (await c.get("/console/stats")).status_code == 303
        assert (await sign_in(c, "ib")).status_code == 401
    with store.read() as session:
        assert session.exec(select(ConsoleSession)).all() == []
        assert session.exec(select(ConsoleUser)).one().disabled
    assert runner.invoke(app, ["-c", path, "users", "disable", "nobody"]).exit_code == 1


async def test_the_daemon_serves_the_console_only_when_enabled(make_config: MakeConfig) -> None:
    for enabled in (True, False):
        port = free_port()
        config = make_config(extra=f"[console]\nenabled = {str(enabled).lower()}", listen=f"127.0.0.1:{port}")
        runtime = await asyncio.to_thread(Runtime.create, config)
        daemon = Daemon(runtime)
        task = asyncio.create_task(daemon.run())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                # the daemon starts in its own time (seconds on a loaded 2-core machine): wait for its port
                deadline = time.monotonic() + 60
                while True:
                    try:
                        response = await c.get("/console/signin")
                        break
                    except httpx.ConnectError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.1)
                if enabled:
                    assert response.status_code == 200 and 'lang="da"' in response.text and "Log ind" in response.text
                    assert "default-src 'none'" in response.headers["content-security-policy"]
                    css = await c.get("/console/static/console.css")
                    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
                else:
                    assert response.status_code == 404
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 10)
            await runtime.aclose()


def test_a_delivery_account_must_name_its_recipient(make_config: MakeConfig) -> None:
    store = store_for(make_config())
    with pytest.raises(accounts.AccountError, match="recipient"):
        accounts.add_user(store, "d", PASSWORD, profile="delivery", organisations=["12345678"])
    with pytest.raises(accounts.AccountError, match="at least 10"):
        accounts.add_user(store, "d", "short", profile="full", organisations=["12345678"])
