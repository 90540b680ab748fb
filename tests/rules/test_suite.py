"""Rule unit tests in TOML: the example suite passes; failures and bad files are reported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.domain import NormalizedMessage
from postbud.cli.rules import READER
from rules.suite import MessageReader, run_test_suite

if TYPE_CHECKING:
    from .conftest import FakeDirectory, MakeMessage, WriteRules

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"


def test_example_suite_passes_with_the_real_parser() -> None:
    result = run_test_suite(EXAMPLES / "tests", EXAMPLES, reader=READER)
    assert result.errors == ()
    assert len(result.cases) == 5 and result.ok, [c.failures for c in result.failed]


def test_with_a_directory_the_attention_person_wins(directory: FakeDirectory) -> None:
    directory.recipients = {"finance": ["Økonomi"], "payroll": ["Løn"], "legal": ["Jura"],
                            "frontdesk": ["Reception"], "birgitte": ["Birgitte Holm"]}
    directory.orgs = {"12345678"}  # the fixtures' recipient
    result = run_test_suite(EXAMPLES / "tests", EXAMPLES, directory, reader=READER)
    [kommune] = [c for c in result.cases if "kommune" in c.name or "municipality" in c.name]
    assert not kommune.passed
    assert kommune.failures == (
        "recipients: expected ['frontdesk'], got ['birgitte']",
        "rule: expected 'municipality to the front desk', got 'attention to a person or unit'",
    )
    assert kommune.evaluation is not None and kommune.evaluation.recipients == ("birgitte",)


def test_failures_and_bad_cases_are_reported(
    tmp_path: Path, rules_dir: WriteRules, make_message: MakeMessage
) -> None:
    rules = rules_dir(a='[[rule]]\nname = "moms"\nwhen.title.any = ["moms"]\nroute = ["finance"]\n')
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "m.eml").write_bytes(b"irrelevant: the parser is faked")
    (suite / "a.toml").write_text(
        '[[case]]\nname = "ok"\nmessage = "m.eml"\nexpect.rule = "moms"\n\n'
        '[[case]]\nname = "wrong"\nmessage = "m.eml"\nexpect.action = "hold"\nexpect.recipients = []\n\n'
        '[[case]]\nname = "missing"\nmessage = "nope.eml"\nexpect.action = "hold"\n\n'
        '[[case]]\nmessage = "m.eml"\nexpect.colour = "red"\n',
        encoding="utf-8",
    )
    (suite / "b.toml").write_text("[[case]\n", encoding="utf-8")

    def parse(raw: bytes, filename: str) -> NormalizedMessage:
        return make_message(title="Moms")

    result = run_test_suite(suite, rules, reader=MessageReader(parse))
    assert [(c.name, c.passed, c.line) for c in result.cases] == [
        ("ok", True, 1), ("wrong", False, 6), ("missing", False, 12),
    ]
    assert result.cases[1].failures == (
        "action: expected hold, got route ()",
        "recipients: expected [], got ['finance']",
    )
    assert result.cases[2].failures[0].startswith("cannot read ")
    assert result.errors[0] == (
        f"{suite / 'a.toml'}:17:1: unknown key(s) colour; a case has name, message, organisation, "
        "mailbox, provider, received_at, expect and expect.{action, recipients, rule, tags, priority}"
    )
    assert result.errors[1].startswith(f"{suite / 'b.toml'}: TOML syntax:")
    assert not result.ok


def test_rule_errors_stop_the_suite(tmp_path: Path, rules_dir: WriteRules) -> None:
    rules = rules_dir(a='[[rule]]\nname = "x"\n')
    result = run_test_suite(tmp_path, rules, reader=READER)
    assert result.cases == () and not result.ok
    assert result.errors == (f"{rules / 'a.toml'}:1:1: rule has no action: give 'route', 'hold', or 'continue = true'",)
