"""The example rule set checks clean and routes the sandbox's Danish mail where it should."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.generator import generate
from sandbox.letters import (
    AT,
    BANK,
    DEPARTMENTS,
    ERST,
    KOMMUNE,
    PERSONS,
    SKAT,
    UDK,
)
from rules.facts import MessageFacts
from rules.loader import check, load

if TYPE_CHECKING:
    from .conftest import FakeDirectory

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"
CVR = "12345674"


def sandbox_directory(directory: FakeDirectory) -> FakeDirectory:
    """The sandbox company's people and departments, plus the teams the example rules route to."""
    directory.orgs = {CVR}
    directory.recipients = {f"person-{i}": [name] for i, name in enumerate(PERSONS)}
    directory.recipients |= {f"unit-{i}": [name] for i, name in enumerate(DEPARTMENTS)}
    directory.recipients |= {t: [t.title()] for t in ("finance", "payroll", "legal", "frontdesk", "ceo")}
    directory.group_map = {"management": ["ceo"]}
    return directory


def test_example_rules_check_clean_against_a_directory(directory: FakeDirectory) -> None:
    assert check(EXAMPLES) == []
    assert check(EXAMPLES, sandbox_directory(directory)) == []


def test_sandbox_mail_is_routed_by_sender_or_attention(directory: FakeDirectory) -> None:
    rs = load(EXAMPLES, sandbox_directory(directory))
    expected = {
        SKAT.cvr: {"finance", "payroll"},
        ERST.cvr: {"legal"},
        UDK.cvr: {"payroll"},
        KOMMUNE.cvr: {"frontdesk"},
        AT.cvr: {"legal", "ceo"},
        BANK.cvr: {"finance"},
    }
    routed_by_attention = 0
    for message in generate(CVR, 120, seed=3):
        assert message.sent_at is not None
        ev = rs.evaluate(MessageFacts(message, CVR, "main", "sandbox", message.sent_at))
        if ev.rule and ev.rule.startswith("attention"):
            routed_by_attention += 1
            assert ev.recipients[0].startswith(("person-", "unit-")), ev.explanation
            continue
        if ev.action == "hold":  # only an attention block naming nobody known may fall through
            assert ev.rule is None and message.sender.id in (UDK.cvr, AT.cvr, BANK.cvr)
            continue
        assert set(ev.recipients) <= expected[message.sender.id or ""], (message.title, ev.rule)
    assert routed_by_attention > 20
