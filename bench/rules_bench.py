"""Benchmark: decisions per second of 200 TOML rules over 10,000 synthetic messages on one core.

Run: `.venv/bin/python bench/rules_bench.py [--rules 200] [--messages 10000]`.
The rule mix resembles a multi-company installation: per-organisation rules keyed on the sending
authority and title words, regexes with captures through a lookup, fuzzy sender names, attachment
globs, date/time conditions, and a few tagging rules that `continue`; a catch-all closes the set.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.domain import (
    Attention,
    Document,
    DocumentKind,
    File,
    MessageType,
    NormalizedMessage,
    Party,
)
from rules.engine import RuleSet
from rules.facts import MessageFacts
from rules.loader import load

ORGS = [f"{30000000 + i * 17:08d}" for i in range(20)]
AUTHORITIES = [
    ("29188505", "Skattestyrelsen"),
    ("10213231", "Erhvervsstyrelsen"),
    ("29190909", "Københavns Kommune"),
    ("55568510", "Udbetaling Danmark"),
    ("16287180", "Arbejdstilsynet"),
    ("43271911", "Motorstyrelsen"),
]
WORDS = ["moms", "skat", "selskabsskat", "faktura", "påmindelse", "kontrol", "afgørelse", "høring", "tilsyn", "årsrapport", "kørselsgodtgørelse", "lønsum", "rykker", "bøde", "ejendom", "vurdering", "ansøgning", "bevilling", "frist"]
DEPARTMENTS = ["økonomi", "jura", "løn", "it", "indkøb", "hr"]


def write_rules(folder: Path, count: int, rng: random.Random, *, scoped: bool) -> None:
    """`count` rules over four files, the last rule an unscoped catch-all; with `scoped`, each other
    rule belongs to one of 20 organisations, else every rule applies to every message."""
    lookup = "[lookup.department]\n" + "".join(f'"{d}" = "dept-{d}"\n' for d in DEPARTMENTS)
    blocks: list[str] = []
    for i in range(count - 1):
        org = ORGS[i % len(ORGS)]
        cvr, name = AUTHORITIES[i % len(AUTHORITIES)]
        words = rng.sample(WORDS, 3)
        head = f'[[rule]]\nname = "rule {i}"\n'
        if scoped:
            head += f'organisations = ["{org}"]\n'
        kind = i % 10
        if kind < 5:
            body = f'when.sender.id = "{cvr}"\nwhen.title.any = {words!r}\nroute = ["r{i}"]\n'
        elif kind == 5:
            body = 'when.title.regex = \'Afd(?:eling)?[.:] *(?P<department>\\w+)\'\nroute = ["${department}"]\n'
        elif kind == 6:
            body = f'when.sender.name.fuzzy = {{ to = ["{name}"], min_score = 92 }}\nwhen.text.all = {words[:2]!r}\nroute = ["r{i}"]\n'
        elif kind == 7:
            body = f'when.attachment.name.glob = "*{words[0]}*.pdf"\nroute = ["r{i}"]\n'
        elif kind == 8:
            body = f'when.received.weekday = ["saturday", "sunday"]\nwhen.sender.id = "{cvr}"\nhold = "weekend {i}"\n'
        else:
            body = f'when.flags.legal_notification = true\nwhen.title.any = {words!r}\ntag = ["legal"]\npriority = 5\ncontinue = true\n'
        blocks.append(head + body.replace("'", '"') if kind != 5 else head + body)
    blocks.append('[[rule]]\nname = "front desk"\nroute = ["frontdesk"]\n')
    per_file = (len(blocks) + 3) // 4
    for n in range(4):
        text = (lookup if n == 0 else "") + "\n".join(blocks[n * per_file : (n + 1) * per_file])
        (folder / f"{n:02d}-rules.toml").write_text(text, encoding="utf-8")


def make_facts(count: int, rng: random.Random) -> list[MessageFacts]:
    """Synthetic messages with Danish titles, bodies, attention data and a PDF each."""
    base = datetime(2026, 3, 2, 8, tzinfo=UTC)
    out = []
    for n in range(count):
        cvr, name = rng.choice(AUTHORITIES)
        words = rng.sample(WORDS, 4)
        title = " ".join(words[:2]).capitalize()
        if n % 7 == 0:
            title += f" - Afd. {rng.choice(DEPARTMENTS)}"
        text = f"Kære modtager\nAtt.: Jens Hansen\n{' '.join(words)} " * 20
        message = NormalizedMessage(
            message_id=f"m{n}",
            message_type=MessageType.DIGITALPOST,
            title=title,
            sender=Party(cvr, "CVR", name),
            recipient=Party(rng.choice(ORGS), "CVR"),
            format="memo-1.2",
            attention=Attention(person_name="Jens Hansen") if n % 3 == 0 else None,
            documents=(
                Document(DocumentKind.MAIN, (File(f"{words[0]}-{n}.pdf", "application/pdf", b"%PDF"),)),
            ),
            text=text,
        )
        received = base + timedelta(minutes=37 * n)
        out.append(MessageFacts(message, message.recipient.id or "", "main", "ngdp", received))
    return out


def _timed_pass(ruleset: RuleSet, facts: list[MessageFacts]) -> float:
    started = time.perf_counter()
    for f in facts:
        ruleset.evaluate(f)
    return time.perf_counter() - started


def main() -> None:
    """Build the rules and messages, evaluate every message once, print decisions per second."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the issue asks
    for scoped in (True, False):
        rng = random.Random(5)
        with tempfile.TemporaryDirectory() as tmp:
            write_rules(Path(tmp), args.rules, rng, scoped=scoped)
            started = time.perf_counter()
            ruleset = load(tmp)
            load_s = time.perf_counter() - started
        facts = make_facts(args.messages, rng)
        outcomes: dict[str, int] = {}
        for f in facts:
            ev = ruleset.evaluate(f)
            key = "catch-all" if ev.rule == "front desk" else ev.action
            outcomes[key] = outcomes.get(key, 0) + 1
        # Best of three passes: the machine is shared, and the best pass is the least disturbed.
        elapsed = min(_timed_pass(ruleset, facts) for _ in range(3))
        label = "per-organisation rules" if scoped else "all rules shared by every organisation"
        print(f"{label}: {len(ruleset.rules)} rules (loaded and checked in {load_s * 1000:.0f} ms)")
        print(f"  messages: {len(facts)}; outcomes: {outcomes}")
        print(f"  {len(facts) / elapsed:,.0f} decisions/s ({elapsed * 1e6 / len(facts):.0f} µs each)")


if __name__ == "__main__":
    main()
