"""Hot reload: a changed valid directory yields a new rule set; a bad change is refused once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rules.engine import RuleSet
from rules.watch import RuleWatcher

if TYPE_CHECKING:
    from .conftest import MakeFacts, WriteRules

GOOD = '[[rule]]\nname = "r"\nwhen.title.any = ["moms"]\nroute = ["finance"]\n'


def touch(path: Path, text: str) -> None:
    """Rewrite a file and move its mtime on, as an editor saving a second later would."""
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_first_poll_loads_then_unchanged_is_none(rules_dir: WriteRules) -> None:
    watcher = RuleWatcher(rules_dir(a=GOOD))
    first = watcher.poll()
    assert isinstance(first, RuleSet) and [r.name for r in first.rules] == ["r"]
    assert watcher.poll() is None


def test_reload_refuses_a_bad_file_and_accepts_the_fix(
    rules_dir: WriteRules, make_facts: MakeFacts
) -> None:
    folder = rules_dir(a=GOOD)
    watcher = RuleWatcher(folder)
    active = watcher.poll()
    assert isinstance(active, RuleSet)

    touch(folder / "a.toml", GOOD.replace("route", "rout"))
    refused = watcher.poll()
    assert isinstance(refused, list)
    assert [str(i) for i in refused] == [
        f"{folder}/a.toml:1:1: rule has no action: give 'route', 'hold', or 'continue = true'",
        f"{folder}/a.toml:4:1: unknown key 'rout' in rule; did you mean 'route'?",
    ]
    assert watcher.poll() is None  # the refusal is reported once; the caller keeps `active`
    assert active.evaluate(make_facts(title="moms")).recipients == ("finance",)

    touch(folder / "a.toml", GOOD.replace("finance", "legal"))
    fixed = watcher.poll()
    assert isinstance(fixed, RuleSet) and fixed.version != active.version
    assert fixed.evaluate(make_facts(title="moms")).recipients == ("legal",)


def test_new_and_removed_files_are_noticed(rules_dir: WriteRules) -> None:
    folder = rules_dir(a=GOOD)
    watcher = RuleWatcher(folder)
    watcher.poll()
    (folder / "b.toml").write_text(GOOD.replace('"r"', '"s"'), encoding="utf-8")
    added = watcher.poll()
    assert isinstance(added, RuleSet) and [r.name for r in added.rules] == ["r", "s"]
    (folder / "a.toml").unlink()
    removed = watcher.poll()
    assert isinstance(removed, RuleSet) and [r.name for r in removed.rules] == ["s"]
    (folder / "notes.txt").write_text("not a rule file", encoding="utf-8")
    assert watcher.poll() is None
