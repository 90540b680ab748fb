"""The route stage with rules: rule decisions with explanations, fallback, hot reload, replay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from postbud.cli.app import app
from core.metrics import Metrics
from postbud.runtime import Runtime
from postbud.service import serve
from postbud.trace import SearchFilter, search, show
from router.by_rules import RuleSource
from tests.collector.test_folder_collection import EML, drop
from tests.conftest import MakeConfig

FINANCE_RULE = """
[[rule]]
name = "tax to finance"
when.sender.name = "Skattestyrelsen"
when.title.any = ["moms*", "skat"]
route = ["finance"]
"""


def rules_dir(base: Path, text: str = FINANCE_RULE) -> Path:
    folder = base / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "10-tax.toml").write_text(text, encoding="utf-8")
    return folder


def test_a_rule_routes_and_its_explanation_is_traced(make_config: MakeConfig, tmp_path: Path) -> None:
    rules_dir(tmp_path)
    config = make_config(extra='[rules]\ndirectory = "rules"')
    drop(config.base_dir, "a.eml", EML)
    asyncio.run(serve(config, once=True))
    runtime = Runtime.create(config)
    try:
        (row,) = search(runtime.store, SearchFilter())
        timeline = show(runtime.store, row["id"])
    finally:
        asyncio.run(runtime.aclose())
    assert timeline is not None
    (decision,) = timeline["decisions"]
    assert decision["decided_by"] == "rule" and decision["rule"] == "tax to finance"
    assert decision["recipients"] == ["finance"]
    tried = decision["explanation"]["tried"]
    assert tried[0]["matched"] is True and tried[0]["rule"] == "tax to finance"


def test_unmatched_mail_takes_the_organisation_fallback(make_config: MakeConfig, tmp_path: Path) -> None:
    rules_dir(tmp_path, FINANCE_RULE.replace("Skattestyrelsen", "Erhvervsstyrelsen"))
    config = make_config(extra_org="", extra='[rules]\ndirectory = "rules"')
    drop(config.base_dir, "a.eml", EML)
    asyncio.run(serve(config, once=True))
    runtime = Runtime.create(config)
    try:
        (row,) = search(runtime.store, SearchFilter())
    finally:
        asyncio.run(runtime.aclose())
    assert row["status"] == "held"
    assert "no rule matched" in row["status_reason"]


def test_reload_refuses_a_bad_change_and_keeps_the_last_good_rules(tmp_path: Path) -> None:
    folder = rules_dir(tmp_path)
    metrics = Metrics()
    source = RuleSource(folder, None, metrics)
    good = source.current
    assert good is not None
    (folder / "20-bad.toml").write_text('[[rule]]\nname = "broken"\nwhen.title.regex = "(unclosed"\n'
                                        'route = ["x"]\n')
    source.refresh()
    assert source.current is good
    assert metrics.registry.get_sample_value("postbud_rules_reloads_total", {"outcome": "refused"}) == 1
    (folder / "20-bad.toml").write_text(FINANCE_RULE.replace("tax to finance", "second"))
    source.refresh()
    assert source.current is not good and len(source.current.rules) == 2  # type: ignore[union-attr]


def test_replay_reports_what_a_candidate_rule_set_would_change(make_config: MakeConfig, tmp_path: Path) -> None:
    rules_dir(tmp_path)
    config = make_config(extra='[rules]\ndirectory = "rules"')
    drop(config.base_dir, "a.eml", EML)
    asyncio.run(serve(config, once=True))
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "r.toml").write_text(FINANCE_RULE.replace('["finance"]', '["legal"]'))
    result = CliRunner().invoke(
        app, ["-c", str(config.path), "rules", "replay", "--since", "1d", "--rules", str(candidate), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examined"] == 1
    assert report["organisations"] == {"12345678": {"recipient changed": 1}}
    (change,) = report["changes"]
    assert change["before"]["recipients"] == ["finance"] and change["after"]["recipients"] == ["legal"]
