"""Issue 14 finding 6: `postbud connectors probe MAILBOX` shows the mit.dk mailboxes the tokens see; its
JSON is on stdout alone, also after another command ran in the same process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from postbud.cli.app import app
from sandbox.providers.mitdk import FakeMitdk

CVR = "12345674"


async def test_probe_lists_the_mailboxes_and_marks_the_one_chosen(
        fake: FakeMitdk, base_url: str, ca: Any, tmp_path: Path) -> None:
    path = write_config(fake, base_url, ca, tmp_path)
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, ["-c", str(path), "connectors", "probe", "mit", "--json"])
    assert result.exit_code == 0, result.output
    seen = {b["ownerName"]: b for b in json.loads(result.stdout)}
    assert set(seen) == {"Delegeret Person", "Testfirma ApS", "Andet Firma A/S"}
    assert seen["Testfirma ApS"]["chosen"] == "yes" and seen["Testfirma ApS"]["id"] == fake.mailbox_for(CVR).mailbox_id
    plain = await asyncio.to_thread(runner.invoke, app, ["-c", str(path), "connectors", "probe", f"{CVR}/mit"])
    assert plain.exit_code == 0 and "* id=" in plain.stdout and "dataSource=DP_PUBLIC" in plain.stdout


async def test_probe_after_an_in_process_run_prints_json_on_stdout_and_logs_on_stderr(
        fake: FakeMitdk, base_url: str, ca: Any, tmp_path: Path, restore_logging: None) -> None:
    # GIVEN `postbud run --once` ran in this process: it set up logging while CliRunner's stderr was current,
    # and CliRunner closed that stream when the command returned
    path = write_config(fake, base_url, ca, tmp_path)
    runner = CliRunner()
    ran = await asyncio.to_thread(runner.invoke, app, ["-c", str(path), "run", "--once"])
    assert ran.exit_code == 0, ran.output
    # WHEN a second command logs while printing JSON
    result = await asyncio.to_thread(runner.invoke, app, ["-c", str(path), "connectors", "probe", "mit", "--json"])
    # THEN its stdout is the JSON alone, and its log lines are on its own (current) stderr
    assert result.exit_code == 0, result.output
    assert {b["ownerName"] for b in json.loads(result.stdout)} >= {"Testfirma ApS"}
    assert "Logging error" not in result.stderr and "closed file" not in result.stderr
    assert "mit.dk tokens refreshed" in result.stderr


def write_config(fake: FakeMitdk, base_url: str, ca: Any, tmp_path: Path) -> Path:
    creds = fake.credentials()
    path = tmp_path / "postbud.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n'
        f'[[organisations]]\ncvr = "{CVR}"\nname = "Testfirma ApS"\n'
        '  [[organisations.mailboxes]]\n  name = "mit"\n  type = "mitdk"\n'
        f'  base_url = "{base_url}"\n  ca_file = "{ca.cert_path}"\n  client_id = "{creds["client_id"]}"\n'
        f'  dpp_refresh_token = "{creds["dpp_refresh_token"]}"\n'
        f'  ngdp_refresh_token = "{creds["ngdp_refresh_token"]}"\n  cvr = "{CVR}"\n')
    return path
