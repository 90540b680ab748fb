"""Fuzzy recipient matching: names in attention data or 'Att.:' lines to approved recipients."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core.domain import Attention
from rules.recipients import candidates_from, match_recipient

if TYPE_CHECKING:
    from .conftest import FakeDirectory, LoadRules, MakeFacts

RULE = """
[[rule]]
name = "attention"
when.attention.recipient = {{ min_score = {score}, margin = {margin} }}
route = ["${{recipient}}"]

[[rule]]
name = "text"
when.text.recipient = true
route = ["${{recipient}}"]
"""


def test_candidates_from_text_lines() -> None:
    text = "Kære kunde\nAtt.: Jens Hansen\n  til: Økonomi \nATTENTION: Jura\nTil lykke\nAtt. Søren"
    assert candidates_from([text], labels=False) == ["Jens Hansen", "Økonomi", "Jura", "Søren"]
    assert candidates_from(["Att.: Bogholderiet", "Jens Hansen"], labels=True) == [
        "Bogholderiet",
        "Jens Hansen",
    ]


def test_match_recipient_reports_runner_up(directory: FakeDirectory) -> None:
    found = match_recipient(["Søren Østergård"], directory.recipients)
    assert found is not None
    assert (found.recipient, found.name) == ("soren", "Søren Østergaard")
    assert 85 < found.score < 100 and found.runner_up is not None
    assert found.runner_up_score < found.score - 20
    assert match_recipient([], directory.recipients) is None


def test_a_changed_recipients_list_is_matched_anew(directory: FakeDirectory) -> None:
    # GIVEN a name matched once against the organisation's recipients
    before = match_recipient(["Bogholderiet"], directory.recipients)
    assert before is not None and before.recipient == "finance"
    # WHEN the recipients change (the alias moves to another recipient) and the same name comes again
    changed = {rid: [label for label in labels if label != "Bogholderiet"]
               for rid, labels in directory.recipients.items()}
    changed["legal"] = [*changed["legal"], "Bogholderiet"]
    # THEN the answer is the new list's, and the old list still gets its own
    after = match_recipient(["Bogholderiet"], changed)
    assert after is not None and after.recipient == "legal"
    again = match_recipient(["Bogholderiet"], directory.recipients)
    assert again is not None and again.recipient == "finance"


def test_aliases_of_one_recipient_do_not_compete(directory: FakeDirectory) -> None:
    found = match_recipient(["Bogholderiet"], directory.recipients)
    assert found is not None and found.recipient == "finance" and found.score == 100
    assert found.runner_up != "finance"


@pytest.mark.parametrize(
    ("attention", "expected"),
    [
        (Attention(person_name="Jens Hansen"), ("attention", ("jens",))),
        (Attention(person_name="Att.: jens hansen"), ("attention", ("jens",))),
        (Attention(content_responsible="Økonomi"), ("attention", ("finance",))),
        (Attention(person_name="Jens"), (None, ())),  # Jens Hansen or Jens Møller: too close
        (Attention(person_name="Karen Blixen"), (None, ())),
    ],
)
def test_attention_recipient_rule(
    ruleset: LoadRules,
    make_facts: MakeFacts,
    directory: FakeDirectory,
    attention: Attention,
    expected: tuple[str | None, tuple[str, ...]],
) -> None:
    rs = ruleset(RULE.format(score=90, margin=10), directory)
    ev = rs.evaluate(make_facts(attention=attention))
    assert (ev.rule, ev.recipients) == expected


def test_explanation_has_score_and_runner_up(
    ruleset: LoadRules, make_facts: MakeFacts, directory: FakeDirectory
) -> None:
    rs = ruleset(RULE.format(score=90, margin=10), directory)
    ev = rs.evaluate(make_facts(attention=Attention(person_name="Jens")))
    cond = ev.explanation["tried"][0]["conditions"][0]
    assert cond["recipient"] in ("jens", "jensm") and cond["runner_up"] in ("jens", "jensm")
    assert cond["score"] == cond["runner_up_score"] == 90.0
    assert cond["reason"] == "margin 0.0 over runner-up below 10"


def test_text_att_line(ruleset: LoadRules, make_facts: MakeFacts, directory: FakeDirectory) -> None:
    rs = ruleset(RULE.format(score=90, margin=10), directory)
    ev = rs.evaluate(make_facts(text="Firma ApS\nAtt.: Søren Østergaard\nVedr. moms"))
    assert (ev.rule, ev.recipients) == ("text", ("soren",))
    cond = ev.explanation["tried"][1]["conditions"][0]
    assert "candidate" not in cond  # body text stays out of the explanation


def test_no_directory_means_no_match(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(RULE.format(score=90, margin=10))
    ev = rs.evaluate(make_facts(attention=Attention(person_name="Jens Hansen")))
    assert ev.rule is None
    assert ev.explanation["tried"][0]["conditions"][0]["reason"] == "no recipient directory available"
