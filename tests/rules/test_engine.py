"""Evaluation semantics: first match wins, continue, scopes, actions, lookups, fallback and diffs."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from rules.decisions import apply_fallback, compact_explanation, diff_decisions
from rules.model import Evaluation

if TYPE_CHECKING:
    from .conftest import FakeDirectory, LoadRules, MakeFacts

TWO_RULES = """
[[rule]]
name = "tax"
when.title.any = ["moms"]
route = ["finance"]
{extra}

[[rule]]
name = "all vat"
when.title.any = ["moms", "vat"]
route = ["legal"]
"""


def test_first_match_wins(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(TWO_RULES.format(extra=""))
    ev = rs.evaluate(make_facts(title="Moms"))
    assert (ev.action, ev.recipients, ev.rule, ev.matched_rules) == ("route", ("finance",), "tax", ("tax",))
    assert [t["rule"] for t in ev.explanation["tried"]] == ["tax"]  # later rules are not tried


def test_continue_opts_in_to_further_matching(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(TWO_RULES.format(extra="continue = true"))
    ev = rs.evaluate(make_facts(title="Moms"))
    assert ev.recipients == ("finance", "legal") and ev.rule == "tax"
    assert ev.matched_rules == ("tax", "all vat")
    assert rs.evaluate(make_facts(title="VAT")).recipients == ("legal",)


def test_no_match_holds_with_reason(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    ev = ruleset(TWO_RULES.format(extra="")).evaluate(make_facts(title="Hej"))
    assert (ev.action, ev.recipients, ev.rule, ev.reason) == ("hold", (), None, "no rule matched")
    assert not ev.decided
    assert ev.explanation["decided_by"] is None
    assert ev.explanation["tried"][0]["conditions"][0]["found"] == []


def test_scopes(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [[rule]]
        name = "org a, e-boks"
        organisations = ["11111111"]
        providers = ["EBoks"]
        route = ["a"]

        [[rule]]
        name = "mailbox"
        mailboxes = ["Finance"]
        route = ["b"]
        """
    )
    assert rs.evaluate(make_facts(organisation="11111111", provider="eboks")).rule == "org a, e-boks"
    ev = rs.evaluate(make_facts(organisation="11111111", provider="ngdp", mailbox="finance"))
    assert ev.rule == "mailbox" and ev.explanation["skipped_out_of_scope"] == 1
    assert rs.evaluate(make_facts(mailbox="main")).rule is None


def test_hold_tags_and_priority(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [[rule]]
        name = "urgent"
        when.title.any = ["frist"]
        tag = ["deadline"]
        priority = 3
        continue = true

        [[rule]]
        name = "routes"
        when.title.any = ["moms"]
        route = ["finance"]
        priority = 1
        continue = true

        [[rule]]
        name = "legal hold"
        when.flags.legal_notification = true
        hold = "legal notification"
        tag = ["legal"]
        """
    )
    from core.domain import Flags

    ev = rs.evaluate(make_facts(title="Moms frist", flags=Flags(legal_notification=True)))
    assert (ev.action, ev.rule, ev.reason, ev.recipients) == ("hold", "legal hold", "legal notification", ())
    assert ev.tags == ("deadline", "legal") and ev.priority == 3
    routed = rs.evaluate(make_facts(title="Moms frist"))
    assert (routed.action, routed.rule, routed.recipients, routed.tags) == ("route", "routes", ("finance",), ("deadline",))
    tagged_only = rs.evaluate(make_facts(title="frist"))
    assert tagged_only.rule is None and tagged_only.tags == ("deadline",)


def test_lookup_miss_falls_through_to_next_rule(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [lookup.department]
        "Økonomi" = "finance"
        jura = ["legal", "ceo"]

        [[rule]]
        name = "by department"
        when.attention.regex = '^(?:Afd\\. )?(?P<department>\\w+)$'
        route = ["${department}"]

        [[rule]]
        name = "front desk"
        route = ["frontdesk"]
        """
    )
    from core.domain import Attention

    def route(label: str) -> tuple[str | None, tuple[str, ...]]:
        ev = rs.evaluate(make_facts(attention=Attention(content_responsible=label)))
        return ev.rule, ev.recipients

    assert route("økonomi") == ("by department", ("finance",))
    assert route("Afd. JURA") == ("by department", ("legal", "ceo"))
    assert route("Salg") == ("front desk", ("frontdesk",))
    ev = rs.evaluate(make_facts(attention=Attention(content_responsible="Salg")))
    assert ev.explanation["tried"][0]["reason"] == "'Salg' has no entry in [lookup.department]"


def test_groups_expand_and_unknown_recipients_hold(
    ruleset: LoadRules, make_facts: MakeFacts, directory: FakeDirectory
) -> None:
    text = '[[rule]]\nname = "r"\nroute = ["management", "finance", "ceo"]\n'
    rs = ruleset(text, directory)
    assert rs.evaluate(make_facts()).recipients == ("ceo", "legal", "finance")
    assert rs.evaluate(make_facts(), directory=None).recipients == ("ceo", "legal", "finance")
    other_org = rs.evaluate(make_facts(organisation="99999999"))
    assert (other_org.action, other_org.rule) == ("hold", "r")
    assert other_org.reason is not None and "unknown recipient(s) management, finance, ceo" in other_org.reason


def test_without_directory_groups_stay_as_written(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset('[[rule]]\nname = "r"\nroute = ["management"]\n')
    assert rs.evaluate(make_facts()).recipients == ("management",)


def test_explanation_is_json_ready_and_locates_rules(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(TWO_RULES.format(extra=""))
    ev = rs.evaluate(make_facts(title="VAT"))
    data = json.loads(json.dumps(ev.to_json()))
    assert data["action"] == "route" and data["rule"] == "all vat" and data["recipients"] == ["legal"]
    assert [t["at"] for t in data["explanation"]["tried"]] == ["rules.toml:1", "rules.toml:7"]
    assert data["explanation"]["rule_set"] == rs.version


def test_apply_fallback(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(TWO_RULES.format(extra=""))
    undecided = rs.evaluate(make_facts(title="Hej"))
    to_desk = apply_fallback(undecided, "frontdesk")
    assert (to_desk.action, to_desk.recipients, to_desk.rule) == ("route", ("frontdesk",), None)
    assert to_desk.explanation["fallback"] == "frontdesk"
    held = apply_fallback(undecided)
    assert (held.action, held.reason, held.explanation["fallback"]) == ("hold", "no rule matched", "hold")
    decided = rs.evaluate(make_facts(title="moms"))
    assert apply_fallback(decided, "frontdesk") is decided


def test_diff_decisions() -> None:
    routed = Evaluation("route", ("finance",), "r")
    assert diff_decisions(routed, dataclasses.replace(routed, rule="other")) is None
    assert diff_decisions(routed, Evaluation("route", ("legal",), "r")) == "recipient changed"
    assert diff_decisions(routed, Evaluation("hold", (), None, reason="no rule matched")) == "newly held"
    assert diff_decisions(Evaluation("hold", (), None), routed) == "newly automated"
    assert diff_decisions(Evaluation("hold", (), None), Evaluation("hold", (), "x")) is None


def test_compact_explanation_keeps_matches_and_last_failures(
    ruleset: LoadRules, make_facts: MakeFacts
) -> None:
    rules = "".join(
        f'[[rule]]\nname = "r{i}"\nwhen.title.any = ["w{i}"]\nroute = ["x"]\n' for i in range(30)
    )
    rs = ruleset(rules)
    ev = rs.evaluate(make_facts(title="w25"))
    small = compact_explanation(ev, keep=3)
    assert [t["rule"] for t in small["tried"]] == ["r22", "r23", "r24", "r25"]
    assert small["not_matched"] == 25 and small["decided_by"] == "r25"
    assert small["tried"][0]["failed"]["field"] == "title"
    assert small["tried"][-1] == ev.explanation["tried"][-1]
    assert len(json.dumps(small)) < len(json.dumps(ev.explanation)) / 3


def test_evaluation_json_round_trip(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    ev = ruleset(TWO_RULES.format(extra="continue = true")).evaluate(make_facts(title="moms"))
    back = Evaluation.from_json(json.loads(json.dumps(ev.to_json())))
    assert back == ev and back.explanation == ev.explanation
    assert diff_decisions(back, ev) is None
