"""A catastrophic regex cannot stall the router: it times out, does not match, and says so."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from rules.loader import load

if TYPE_CHECKING:
    from .conftest import MakeFacts, WriteRules

EVIL = "a" * 40 + "b"


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+$", "(a|a)+c"])
def test_catastrophic_pattern_times_out_as_not_matched(
    rules_dir: WriteRules, make_facts: MakeFacts, pattern: str
) -> None:
    folder = rules_dir(
        rules=f"""
        [[rule]]
        name = "evil"
        when.title.regex = '{pattern}'
        route = ["x"]

        [[rule]]
        name = "next"
        route = ["frontdesk"]
        """
    )
    rs = load(folder, regex_timeout=0.05)
    started = time.monotonic()
    ev = rs.evaluate(make_facts(title=EVIL))
    assert time.monotonic() - started < 1.0
    assert (ev.rule, ev.recipients) == ("next", ("frontdesk",))
    evil = ev.explanation["tried"][0]
    assert evil["matched"] is False
    reason = evil["conditions"][0].get("reason", "")
    # `regex` defuses some classic patterns itself; those must simply not match, quickly.
    assert reason == "" or reason.startswith("regex timed out after 0.050s")


def test_the_time_limit_is_what_stops_the_search(rules_dir: WriteRules, make_facts: MakeFacts) -> None:
    folder = rules_dir(rules="[[rule]]\nname = 'evil'\nwhen.title.regex = '(a|aa)+$'\nroute = ['x']\n")
    rules, facts = load(folder, regex_timeout=0.2), make_facts(title=EVIL)
    started = time.monotonic()
    ev = rules.evaluate(facts)
    elapsed = time.monotonic() - started
    # Unbounded, this search runs for hours; the upper bound leaves room for a busy machine.
    assert 0.15 < elapsed < 5.0
    assert ev.rule is None
    assert ev.explanation["tried"][0]["conditions"][0]["reason"].startswith("regex timed out")


def test_evaluation_budget_bounds_many_slow_patterns(rules_dir: WriteRules, make_facts: MakeFacts) -> None:
    rules = "".join(
        f"[[rule]]\nname = 'evil {i}'\nwhen.title.regex = '(a|aa)+${'$' * i}'\nroute = ['x']\n"
        for i in range(20)
    )
    folder = rules_dir(rules=rules)
    rules, facts = load(folder, regex_timeout=0.05, budget=0.2), make_facts(title=EVIL)
    ev = rules.evaluate(facts)
    reasons = [t["conditions"][0]["reason"] for t in ev.explanation["tried"]]
    # At most 0.2 / 0.05 searches ran to their own limit: the rest were not even started (not 20 x 0.05 s;
    # said by the reasons, not by the wall clock, which a busy machine stretches).
    assert sum(r.startswith("regex timed out") for r in reasons) <= 5
    assert reasons[-1] == "regex time budget of this evaluation exhausted"
    assert ev.rule is None
