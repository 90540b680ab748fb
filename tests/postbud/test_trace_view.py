"""`trace show` reads as a story: who received what by which channel, the timeline, and why in words
(the rules as `rules test` prints them, not raw JSON); tables keep ids and titles whole at 80 columns."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postbud.cli.app import app
from postbud.service import serve
from sandbox.demo import write_demo_recipients
from sandbox.mailserver import ensure_demo_recipient
from tests.conftest import MakeConfig

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def config_path(make_config: MakeConfig, tmp_path: Path) -> str:
    write_demo_recipients(tmp_path / "recipients.toml", ["12345678"], ensure_demo_recipient(tmp_path / "keys"))
    shutil.copytree(ROOT / "rules" / "examples", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    config = make_config(extra='[recipients]\nfile = "recipients.toml"\n[rules]\ndirectory = "rules"\n'
                               '[delivery]\nsmtp_port = 1\nsmtp_timeout_seconds = 1\n',
                         extra_org='default_route = ["frontdesk"]')
    (config.base_dir / "drop").mkdir(exist_ok=True)
    shutil.copy(ROOT / "rules" / "examples" / "tests" / "messages" / "skat-moms.xml", config.base_dir / "drop")
    asyncio.run(serve(config, once=True))
    return str(config.path)


def test_trace_show_says_who_received_what_and_why_in_words(config_path: str) -> None:
    (row,) = json.loads(runner.invoke(app, ["-c", config_path, "trace", "search", "--json"]).stdout)
    shown = runner.invoke(app, ["-c", config_path, "trace", "show", row["id"]])
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "received by" in text and "finance" in text and "by email" in text
    assert "timeline" in text and "collected" in text
    assert "why: " in text and "route to finance by rule 'Skattestyrelsen: VAT and corporate tax to finance'" in text
    assert "✓ sender.id equals" in text and "earlier rules did not match" in text
    assert '{"rules_version"' not in text  # no raw explanation JSON
    full = runner.invoke(app, ["-c", config_path, "trace", "show", row["id"], "--full"]).stdout
    assert "✗ legal notifications are held" in full


def test_tables_keep_ids_and_titles_whole_at_80_columns(config_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    (row,) = json.loads(runner.invoke(app, ["-c", config_path, "trace", "search", "--json"]).stdout)
    result = runner.invoke(app, ["-c", config_path, "trace", "search"])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert row["id"][:12] in result.stdout and "…" not in result.stdout
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["id", "received", "status", "org", "mailbox", "sender", "title"]
    title = "".join(line[header.index("title"):].replace(" ", "") for line in lines)  # folded, not cut
    assert title == row["title"].replace(" ", "")


def test_rules_check_in_a_fresh_checkout_goes_on_without_the_sandbox_recipients(tmp_path: Path) -> None:
    """The example config names the sandbox's recipients file, which exists only after the first run."""
    shutil.copy(ROOT / "config.example.toml", tmp_path)
    shutil.copytree(ROOT / "rules" / "examples", tmp_path / "rules" / "examples")
    result = runner.invoke(app, ["-c", str(tmp_path / "config.example.toml"), "rules", "check"])
    assert result.exit_code == 0, result.output
    assert "does not exist yet" in result.stderr and "ok (" in result.stdout
