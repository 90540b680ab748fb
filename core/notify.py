"""Notifications to an organisation's administrators (re-authentication needed, escalations).

Each notification is kept as a trace event without a message, so it is auditable and a delivery
channel can pick it up; the log line says that one was raised, never its secrets.
"""

from __future__ import annotations

import logging
from typing import Protocol

from core.lifecycle import record
from core.storage.db import Store

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def notify(self, organisation: str, subject: str, text: str) -> None: ...


class TraceNotifier:
    def __init__(self, store: Store, administrators: dict[str, tuple[str, ...]]) -> None:
        self._store = store
        self._administrators = administrators

    def notify(self, organisation: str, subject: str, text: str) -> None:
        recipients = list(self._administrators.get(organisation, ()))
        with self._store.transaction() as session:
            record(session, None, "notification", actor="postbud", reason=subject,
                   detail={"organisation": organisation, "to": recipients, "text": text})
        log.warning("notification for %s administrators (%d): %s", organisation, len(recipients), subject)
