"""`postbud locations list|add|remove` and `postbud users add --email` / `set-email`: audited, one-line errors."""

from __future__ import annotations

import json

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from core.storage.accounts import AuditEvent, ConsoleUser
from postbud.cli.app import app
from tests.conftest import MakeConfig
from tests.postbud.console.conftest import CHEAP
from tests.postbud.ops_testkit import store_for

runner = CliRunner()


def test_locations_add_list_remove_audited_with_who_and_where(make_config: MakeConfig,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(extra_org='trusted_locations = true\ntrusted_networks = ["127.0.0.0/8", "::1"]')
    path = str(config.path)
    monkeypatch.setenv("POSTBUD_USER", "ops-ida")
    added = runner.invoke(app, ["-c", path, "locations", "add", "Test ApS", "2001:db8:5::1/48"])
    assert added.exit_code == 0 and "2001:db8:5::/48 authorised for 12345678" in added.output, added.output
    again = runner.invoke(app, ["-c", path, "locations", "add", "12345678", "2001:db8:5::/48"])
    assert again.exit_code == 0 and "already" in again.output
    listed = json.loads(runner.invoke(app, ["-c", path, "locations", "list", "--json"]).stdout)
    assert [(r["network"], r["source"], r["enforced"], r["added_by"]) for r in listed] == [
        ("127.0.0.0/8", "config", True, None), ("::1/128", "config", True, None),
        ("2001:db8:5::/48", "cli", True, "ops-ida")]
    assert "2001:db8:5::/48" in runner.invoke(app, ["-c", path, "locations", "list"]).output

    # mistakes: one line, exit 2 for a malformed network, 1 for what is not there or lives in the file
    bad = runner.invoke(app, ["-c", path, "locations", "add", "12345678", "the office"])
    assert bad.exit_code == 2 and "not a network" in bad.output and "Traceback" not in bad.output
    assert runner.invoke(app, ["-c", path, "locations", "remove", "12345678", "127.0.0.0/8"]).exit_code == 1
    assert runner.invoke(app, ["-c", path, "locations", "remove", "12345678", "10.0.0.0/8"]).exit_code == 1
    assert runner.invoke(app, ["-c", path, "locations", "add", "99999999", "10.0.0.0/8"]).exit_code == 1

    removed = runner.invoke(app, ["-c", path, "locations", "remove", "12345678", "2001:db8:5::/48"])
    assert removed.exit_code == 0, removed.output
    with store_for(config).read() as session:
        events = session.exec(select(AuditEvent).order_by(col(AuditEvent.at))).all()
    assert [(e.username, e.action, e.detail["network"], e.detail["via"]) for e in events] == [
        ("ops-ida", "location_authorised", "2001:db8:5::/48", "cli"),
        ("ops-ida", "location_removed", "2001:db8:5::/48", "cli")]
    assert all(e.address and e.address.startswith("cli@") for e in events)


def test_users_email_for_the_links(make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from postbud.console import accounts

    monkeypatch.setattr(accounts, "_hasher", CHEAP)
    config = make_config(extra="[console]\nenabled = true")
    path = str(config.path)
    monkeypatch.setenv("POSTBUD_USER_PASSWORD", "correct horse battery")
    assert runner.invoke(app, ["-c", path, "users", "add", "ib", "--profile", "processing", "--org", "12345678",
                               "--email", "ib@test.dk"]).exit_code == 0
    bad = runner.invoke(app, ["-c", path, "users", "set-email", "ib", "not an address"])
    assert bad.exit_code == 1 and "not an e-mail address" in bad.output
    assert runner.invoke(app, ["-c", path, "users", "set-email", "ib", "ib@other.dk"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["-c", path, "users", "list", "--json"]).stdout)[0]["email"] == "ib@other.dk"
    with store_for(config).read() as session:
        assert session.exec(select(ConsoleUser)).one().email == "ib@other.dk"
