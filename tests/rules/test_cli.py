"""`postbud rules check | test | test-suite` through typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.testing import CliRunner

from postbud.cli.rules import app

if TYPE_CHECKING:
    from .conftest import FakeDirectory, WriteRules

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"
MOMS = EXAMPLES / "tests" / "messages" / "skat-moms.xml"
runner = CliRunner()


def mounted(obj: dict[str, object]) -> typer.Typer:
    """The sub-app mounted as the root CLI does, with `obj` as the configured context."""
    root = typer.Typer()

    @root.callback()
    def configure(ctx: typer.Context) -> None:
        ctx.obj = obj

    root.add_typer(app, name="rules")
    return root


def test_check_ok_and_errors(rules_dir: WriteRules) -> None:
    ok = runner.invoke(app, ["check", str(EXAMPLES)])
    assert ok.exit_code == 0 and ok.stdout.startswith(f"{EXAMPLES}: ok (11 rules")
    bad = rules_dir(a='[[rule]]\nname = "x"\nwhen.titel = "y"\nroute = ["z"]\n')
    result = runner.invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{bad}/a.toml:3:6: unknown field 'titel'; did you mean 'title'?"]


def test_directory_comes_from_the_context_when_omitted() -> None:
    result = runner.invoke(mounted({"rules_dir": str(EXAMPLES)}), ["rules", "check"])
    assert result.exit_code == 0 and "ok (11 rules" in result.stdout
    missing = runner.invoke(mounted({"config": None}), ["rules", "check"])
    assert missing.exit_code == 2 and "no rule directory" in missing.stderr


def test_test_prints_json_decision() -> None:
    result = runner.invoke(app, ["test", str(MOMS), "--rules", str(EXAMPLES), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["action"] == "route" and data["recipients"] == ["finance"]
    assert data["rule"] == "Skattestyrelsen: VAT and corporate tax to finance"
    tried = data["explanation"]["tried"]
    assert [t["at"] for t in tried] == ["00-guards.toml:4", "00-guards.toml:10", "10-attention.toml:6", "10-attention.toml:11", "20-authorities.toml:9"]
    assert tried[-1]["captures"] == {"tax_topic": "Moms"}


def test_test_prints_explanation_text() -> None:
    result = runner.invoke(
        mounted({"rules_dir": str(EXAMPLES)}), ["rules", "test", str(MOMS), "--org", "99999999"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "action:     route" in out and "recipients: finance" in out
    assert "✗ legal notifications are held  (00-guards.toml:4)" in out
    assert "✗ flags.legal_notification equals: value=false" in out
    assert "✓ title regex: " in out


def test_test_reports_rule_errors(rules_dir: WriteRules) -> None:
    bad = rules_dir(a="[[rule]]\nname = 'x'\n")
    result = runner.invoke(app, ["test", str(MOMS), "--rules", str(bad)])
    assert result.exit_code == 1 and "rule has no action" in result.stderr


def test_test_suite_command() -> None:
    ok = runner.invoke(app, ["test-suite", str(EXAMPLES / "tests"), "--rules", str(EXAMPLES)])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[-1] == "5 passed, 0 failed"
    assert "PASS  VAT reminder goes to finance" in ok.stdout


def test_check_uses_the_configured_recipient_directory(directory: FakeDirectory) -> None:
    directory.recipients = {"finance": ["Økonomi"]}
    result = runner.invoke(
        mounted({"rules_dir": str(EXAMPLES), "recipients": directory}), ["rules", "check"]
    )
    assert result.exit_code == 1
    assert f"{EXAMPLES}/20-authorities.toml:6:19: unknown recipient or group 'payroll' for organisation 12345678" in result.stdout.splitlines()


def test_test_with_arrival_time_and_bad_input() -> None:
    args = ["test", str(MOMS), "--rules", str(EXAMPLES), "--json", "--received", "2026-03-07T10:00"]
    assert runner.invoke(app, args).exit_code == 0
    bad = runner.invoke(app, [*args[:-1], "last tuesday"])
    assert bad.exit_code == 2 and "not an ISO 8601 date-time" in bad.stderr
