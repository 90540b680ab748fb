"""Hot reload of the recipients file (as the rules are reloaded), and the trace of every reload.

A changed recipients file is taken when it loads and the active rules still check against it;
otherwise it is refused and the last good one stays active. Each (re)load or refusal of the rules or
the recipients is a system trace event, so `postbud status` can say what is active since when.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from core.lifecycle import record
from core.storage.db import Store
from delivery.errors import RecipientsFileError
from delivery.recipients import RecipientsFile, load_recipients

log = logging.getLogger(__name__)

ACTOR = "postbud"
RULES_LOADED, RULES_REFUSED = "rules_loaded", "rules_refused"
RECIPIENTS_LOADED, RECIPIENTS_REFUSED = "recipients_loaded", "recipients_refused"

Fingerprint = tuple[int, int, int] | None


class RecipientsWatcher:
    """Polls the recipients file; `poll()` offers a new directory, the error that refuses the change
    (once per change), or None when the file did not change. An editor's write-then-rename is seen
    as well as an in-place write (size, mtime and inode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: Fingerprint = None

    def fingerprint(self) -> Fingerprint:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def load(self) -> RecipientsFile:
        """Load now (at start); raises RecipientsFileError. Later polls report only changes after it."""
        self._seen = self.fingerprint()  # before reading: a write during the read is seen next time
        return load_recipients(self.path)

    def poll(self) -> RecipientsFile | RecipientsFileError | None:
        current = self.fingerprint()
        if current == self._seen:
            return None
        self._seen = current
        try:
            return load_recipients(self.path)
        except RecipientsFileError as exc:
            return exc


def record_reload(store: Store, kind: str, reason: str, detail: dict[str, Any]) -> None:
    """A system trace event for a (re)load or a refused change; never fails the caller's reload."""
    try:
        with store.transaction() as session:
            record(session, None, kind, actor=ACTOR, reason=reason, detail=detail)
    except Exception:  # the reload itself happened (or was refused); only its trace is missing
        log.exception("could not record %s in the trace", kind)
