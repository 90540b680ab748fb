"""Each matcher and the boolean combinators, through real rule files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from core.domain import Attention, Flags, MessageType

if TYPE_CHECKING:
    from .conftest import LoadRules, MakeFacts


def matches(ruleset: LoadRules, when: str, facts: object) -> bool:
    """Whether a single rule with this `when` body (TOML lines) matches."""
    rs = ruleset(f'[[rule]]\nname = "r"\nroute = ["x"]\n{when}\n')
    return rs.evaluate(facts).rule == "r"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ('when.sender.id = "29634750"', True),
        ('when.sender.id = ["1", "29634750"]', True),
        ('when.sender.id = ["1", "2"]', False),
        ('when.sender.name = "SKATTESTYRELSEN "', True),  # case-insensitive, trimmed
        ('when.sender.name.equals = "Skattestyrelsen"', True),
        ('when.organisation = "12345678"', True),
        ('when.mailbox = "MAIN"', True),
        ('when.provider = "eboks"', False),
        ('when.recipient.id = "12345678"', True),
        ('when.sender.id_type = "CVR"', True),
        ('when.message_type = "digitalpost"', True),
        ('when.message_type = "NEMSMS"', False),
    ],
)
def test_equals(ruleset: LoadRules, make_facts: MakeFacts, when: str, expected: bool) -> None:
    assert matches(ruleset, when, make_facts()) is expected


@pytest.mark.parametrize(
    ("when", "title", "expected"),
    [
        ('when.title.any = ["moms", "skat"]', "Momsangivelse for 1. kvartal", False),  # whole words
        ('when.title.any = ["moms*"]', "Momsangivelse for 1. kvartal", True),  # prefix
        ('when.title.any = ["moms", "skat"]', "Din MOMS-opgørelse", True),
        ('when.title.any = ["økonomi"]', "Til ØKONOMI, afd. 3", True),  # Danish case folding
        ('when.title.any = ["ø"]', "Økonomi", False),
        ('when.title.any = ["årsrapport"]', "Påmindelse om årsrapport 2025", True),
        ('when.title.all = ["påmindelse", "årsrapport"]', "Påmindelse om årsrapport 2025", True),
        ('when.title.all = ["påmindelse", "moms"]', "Påmindelse om årsrapport 2025", False),
        ('when.title.any = ["om årsrapport"]', "Påmindelse om  årsrapport", True),  # phrase
        ('when.title.any = ["årsrapport om"]', "Påmindelse om årsrapport", False),
    ],
)
def test_words(
    ruleset: LoadRules, make_facts: MakeFacts, when: str, title: str, expected: bool
) -> None:
    assert matches(ruleset, when, make_facts(title=title)) is expected


def test_words_explain_found_and_missing(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset('[[rule]]\nname = "r"\nroute = ["x"]\nwhen.title.all = ["moms", "frist"]\n')
    ev = rs.evaluate(make_facts(title="Moms for 1. kvartal"))
    cond = ev.explanation["tried"][0]["conditions"][0]
    assert cond == {
        "field": "title", "matcher": "all", "matched": False,
        "value": "Moms for 1. kvartal", "found": ["moms"], "missing": ["frist"],
    }


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ('when.attachment.name.glob = "*.PDF"', True),
        ('when.attachment.name.glob = ["faktura*", "*.xml"]', False),
        ('when.attachment.media_type.glob = "application/*"', True),
        ('when.attachment.media_type = "application/pdf"', True),
        ('when.sender.name.glob = "Skatte*"', True),
    ],
)
def test_glob(ruleset: LoadRules, make_facts: MakeFacts, when: str, expected: bool) -> None:
    assert matches(ruleset, when, make_facts()) is expected


def test_regex_unicode_and_captures(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [lookup.afd]
        "økonomi" = "finance"

        [[rule]]
        name = "r"
        when.title.regex = 'Afd\\.: (?P<afd>\\w+)'
        route = ["${afd}"]
        tag = ["afd-${afd}"]
        """
    )
    ev = rs.evaluate(make_facts(title="Brev til Afd.: Økonomi"))
    assert (ev.rule, ev.recipients, ev.tags) == ("r", ("finance",), ("afd-Økonomi",))
    cond = ev.explanation["tried"][0]["conditions"][0]
    assert cond["match"] == "Afd.: Økonomi" and cond["captures"] == {"afd": "Økonomi"}


def test_regex_list_is_any_of(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    when = "when.title.regex = ['^Rykker', '\\d{4}$']"
    assert matches(ruleset, when, make_facts(title="Årsopgørelse 2025"))
    assert not matches(ruleset, when, make_facts(title="Årsopgørelse"))


def test_fuzzy_score_and_margin(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [[rule]]
        name = "r"
        when.sender.name.fuzzy = { to = ["Skattestyrelsen", "Skatteankestyrelsen"], min_score = 85, margin = 5 }
        route = ["x"]
        """
    )
    ok = rs.evaluate(make_facts(sender_name="Skattestyrelsen"))
    cond = ok.explanation["tried"][0]["conditions"][0]
    assert ok.rule == "r" and cond["best"] == "Skattestyrelsen" and cond["score"] == 100.0
    assert cond["runner_up"] == "Skatteankestyrelsen" and cond["runner_up_score"] < 95
    far = rs.evaluate(make_facts(sender_name="Erhvervsstyrelsen"))
    assert far.rule is None
    assert "below 85" in far.explanation["tried"][0]["conditions"][0]["reason"]


def test_fuzzy_margin_refuses_a_tie(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [[rule]]
        name = "r"
        when.sender.name.fuzzy = { to = ["Jens Hansen", "Jens Hanson"], min_score = 80, margin = 10 }
        route = ["x"]
        """
    )
    ev = rs.evaluate(make_facts(sender_name="Jens Hansen"))
    cond = ev.explanation["tried"][0]["conditions"][0]
    assert ev.rule is None and cond["score"] == 100.0 and "margin" in cond["reason"]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("when.received.date.gte = 2026-03-01", True),
        ("when.received.date.lt = 2026-03-02", False),
        ("when.received.date.between = [2026-03-02, 2026-03-02]", True),
        ("when.received.time.between = [08:00:00, 16:00:00]", True),  # 10:00 Danish time
        ("when.received.time.lt = 09:30:00", False),
        ("when.received.gt = 2026-03-02T09:59:00", True),  # naive = Danish time
        ("when.received.gt = 2026-03-02T09:01:00Z", False),
        ('when.received.weekday = ["saturday", "søndag"]', False),
        ('when.received.weekday = "Mandag"', True),
        ("when.attachment.count.gte = 1", True),
        ("when.attachment.count.gt = 1.5", False),
    ],
)
def test_comparisons(ruleset: LoadRules, make_facts: MakeFacts, when: str, expected: bool) -> None:
    assert matches(ruleset, when, make_facts()) is expected


def test_danish_time_across_daylight_saving(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    summer = make_facts(received_at=datetime(2026, 7, 1, 6, 30, tzinfo=UTC))
    assert matches(ruleset, "when.received.time.gte = 08:30:00", summer)  # 08:30 CEST


@pytest.mark.parametrize(
    ("when", "flags", "expected"),
    [
        ("when.flags.legal_notification = true", Flags(legal_notification=True), True),
        ("when.flags.legal_notification = true", Flags(), False),
        ("when.flags.mandatory = false", Flags(), True),
        ("when.flags.reply_allowed.equals = true", Flags(reply_allowed=True), True),
    ],
)
def test_flags(
    ruleset: LoadRules, make_facts: MakeFacts, when: str, flags: Flags, expected: bool
) -> None:
    assert matches(ruleset, when, make_facts(flags=flags)) is expected


def test_attention_fields(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    att = Attention(person_name="Søren Østergaard", content_responsible="Lønafdelingen")
    facts = make_facts(attention=att)
    assert matches(ruleset, 'when.attention.any = ["lønafdelingen"]', facts)
    assert matches(ruleset, 'when.attention.person = "søren østergaard"', facts)
    assert not matches(ruleset, 'when.attention.person.any = ["lønafdelingen"]', facts)
    assert not matches(ruleset, 'when.attention.any = ["x"]', make_facts())


def test_body_text_is_matched_but_never_explained(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    secret = "Fortroligt: CPR 010203-1234. Vedrørende moms for kvartalet."
    rs = ruleset('[[rule]]\nname = "r"\nroute = ["x"]\nwhen.text.any = ["moms"]\n')
    ev = rs.evaluate(make_facts(text=secret))
    dumped = json.dumps(ev.explanation, ensure_ascii=False)
    assert ev.rule == "r" and "CPR" not in dumped and "010203" not in dumped
    assert ev.explanation["tried"][0]["conditions"][0]["value"] == f"<{len(secret)} characters>"


def test_nested_all_any_not(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [[rule]]
        name = "r"
        route = ["x"]
        [rule.when]
        any = [
          { sender.id = "1", title.any = ["moms"] },
          { all = [ { title.any = ["skat"] }, { not = { flags.mandatory = true } } ] },
        ]
        not.message_type = "NEMSMS"
        """
    )
    assert rs.evaluate(make_facts(title="Skat")).rule == "r"
    assert rs.evaluate(make_facts(title="Skat", flags=Flags(mandatory=True))).rule is None
    assert rs.evaluate(make_facts(title="Moms")).rule is None  # sender is not "1"
    assert rs.evaluate(make_facts(title="Moms", sender_id="1")).rule == "r"
    sms = make_facts(title="Skat", message_type=MessageType.NEMSMS)
    ev = rs.evaluate(sms)
    assert ev.rule is None
    json.dumps(ev.explanation)  # nested traces stay JSON-ready


def test_captures_from_a_failed_branch_are_dropped(ruleset: LoadRules, make_facts: MakeFacts) -> None:
    rs = ruleset(
        """
        [lookup.d]
        a = "finance"
        b = "legal"

        [[rule]]
        name = "r"
        route = ["${d}"]
        when.any = [
          { title.regex = '(?P<d>a)', sender.id = "nobody" },
          { title.regex = '(?P<d>b)' },
        ]
        """
    )
    assert rs.evaluate(make_facts(title="a b")).recipients == ("legal",)
