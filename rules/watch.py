"""Hot reload: notices changed rule files and offers the new rule set, or the reasons it was refused."""

from __future__ import annotations

import os
from pathlib import Path

from core.recipients import RecipientDirectory
from rules.engine import RuleSet
from rules.loader import load, rule_files
from rules.model import RuleErrors, RuleIssue

Fingerprint = tuple[tuple[str, int, int, int], ...]


class RuleWatcher:
    """Polls a rule directory; the caller swaps in each RuleSet it returns and keeps the last good one.

    `poll()` returns a new RuleSet when the files changed and are valid, the list of issues when they
    changed and are not (reported once per change), and None when nothing changed. The first poll
    always loads. Changes are seen by file names, sizes, mtimes and inodes, so an editor's
    write-then-rename is noticed as well as an in-place write.
    """

    def __init__(self, path: str | Path, directory: RecipientDirectory | None = None) -> None:
        self.path = Path(path)
        self.directory = directory
        self._seen: Fingerprint | None = None

    def fingerprint(self) -> Fingerprint:
        """What identifies the directory's current contents without reading them."""
        out = []
        for file in rule_files(self.path) if self.path.is_dir() else []:
            try:
                st = os.stat(file)
            except FileNotFoundError:  # deleted between listing and stat: the next poll sees it
                continue
            out.append((file.name, st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(out)

    def poll(self) -> RuleSet | list[RuleIssue] | None:
        """The new rule set, the issues that refuse the change, or None when unchanged."""
        current = self.fingerprint()
        if current == self._seen:
            return None
        self._seen = current
        try:
            return load(self.path, self.directory)
        except RuleErrors as e:
            return list(e.issues)
