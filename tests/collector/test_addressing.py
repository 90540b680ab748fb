"""Issue 14 finding 4: mail addressed to another company's CVR is never delivered under this one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from collector.dispatch import Dispatcher, MailboxRuntime
from collector.ledger import sync_mailboxes
from connectors.base import Fetched, MessageRef
from core.config import CollectorSettings
from core.configfile import load_config
from core.domain import Party
from core.metrics import Metrics
from core.notify import TraceNotifier
from core.storage.models import Message
from postbud.cli.app import app
from postbud.runtime import open_store
from tests.collector.fakes import ScriptedConnector, message


class TwoCompanies(ScriptedConnector):
    """A provider account that receives mail for 12345678 (keys o*) and 87654321 (keys x*)."""

    async def fetch(self, ref: MessageRef) -> Fetched:
        fetched = await super().fetch(ref)
        cvr = "87654321" if ref.key.startswith("x") else "12345678"
        msg = message(ref.key)
        return Fetched(ref, fetched.raw, fetched.raw_media_type,
                       msg.__class__(**{**msg.__dict__, "recipient": Party(cvr, "CVR")}))


def _config(folder: Path, url: str, other_org: bool) -> Path:
    path = folder / "postbud.toml"
    other = '[[organisations]]\ncvr = "87654321"\nname = "Other"\n' if other_org else ""
    path.write_text(
        f'[database]\nurl = "{url}"\n[[organisations]]\ncvr = "12345678"\nname = "T"\n'
        '  [[organisations.mailboxes]]\n  name = "dp"\n  type = "folder"\n  path = "in"\n'
        f'  acknowledge = "after_commit"\n{other}')
    return path


@pytest.mark.parametrize("other_org", [False, True])
async def test_mail_for_another_cvr_is_held_for_its_organisation_or_quarantined(
        tmp_path: Path, database_url: str, other_org: bool) -> None:
    config = load_config(_config(tmp_path, database_url, other_org))
    store = open_store(config)
    try:
        (key,) = sync_mailboxes(store, config)
        connector = TwoCompanies([["o1", "x1", "o2", "x2"]])
        d = Dispatcher(store, Metrics(), CollectorSettings(), TraceNotifier(store, {}), owner="a", jitter=0)
        d.mailboxes = {key.id: MailboxRuntime(key, connector, 60, "fp")}
        d.organisations = frozenset(o.cvr for o in config.organisations)
        await d.run_all_once()
        await d.run_all_once()  # listed again: still not fetched twice, still not acknowledged
        with store.read() as session:
            rows = {m.provider_message_id: m for m in session.exec(select(Message))}
        assert {k: (m.organisation_cvr, m.status) for k, m in rows.items() if k.startswith("o")} == {
            "o1": ("12345678", "collected"), "o2": ("12345678", "collected")}
        foreign = [rows["x1"], rows["x2"]]
        if other_org:
            assert {(m.organisation_cvr, m.status) for m in foreign} == {("87654321", "held")}
            assert sorted(connector.acked) == ["o1", "o2", "x1", "x2"]
        else:
            assert {(m.organisation_cvr, m.status) for m in foreign} == {("12345678", "quarantined")}
            assert all("addressed to CVR 87654321" in (m.status_reason or "") for m in foreign)
            assert sorted(connector.acked) == ["o1", "o2"]  # left at the provider for its owner
        assert sorted(connector.fetched) == ["o1", "o2", "x1", "x2"]
    finally:
        store.dispose()


def test_config_check_warns_about_ngdp_mailboxes_collecting_other_cvrs(tmp_path: Path) -> None:
    path = tmp_path / "postbud.toml"
    (tmp_path / "c").touch()  # config check wants the certificate files the mailboxes name
    (tmp_path / "k").touch()
    common = '  type = "ngdp"\n  system_id = "s"\n  api_token = "t"\n  client_cert = "c"\n  client_key = "k"\n'
    path.write_text(
        '[[organisations]]\ncvr = "12345678"\nname = "T"\n'
        f'  [[organisations.mailboxes]]\n  name = "default"\n{common}'
        f'  [[organisations.mailboxes]]\n  name = "listed"\n{common}  cvrs = ["12345678", "87654321"]\n'
        f'  [[organisations.mailboxes]]\n  name = "own"\n{common}  cvrs = ["12345678"]\n')
    result = CliRunner().invoke(app, ["config", "check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "12345678/default.cvrs" in result.output and '"all"' in result.output
    assert "12345678/listed.cvrs: 87654321" in result.output
    assert "12345678/own" not in result.output
