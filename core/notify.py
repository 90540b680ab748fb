"""Notices to an organisation's people (re-authentication needed, held letters, escalations).

A notice is written as a row of the notices outbox together with a `notification` trace event, in
the transaction that decided to notify; `delivery.notices` then e-mails it and records
`notification_sent` as proof. The `key` names the intent, so deciding the same notice twice (two
instances, a rerun after a crash) queues it once. Notices carry counts, ages, letter ids and
links, never a letter's content; the log line says that one was raised, never its text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core.lifecycle import record
from core.storage.db import Store
from core.storage.models import Notice, new_id

log = logging.getLogger(__name__)

Audience = Literal["administrators", "processors", "everyone"]


class Notifier(Protocol):
    def notify(self, organisation: str, subject: str, text: str, *, key: str | None = None,
               kind: str = "notification", audience: Audience = "administrators") -> None: ...


def queue_notice(
    session: Session, organisation: str, recipients: Sequence[str], subject: str, text: str, *,
    key: str, kind: str, detail: Mapping[str, object] | None = None,
) -> Notice | None:
    """Add the notice and its trace event to the caller's transaction; None when nobody is to be told
    (then only the trace event records it). A duplicate `key` fails the caller's transaction."""
    notice = None
    if recipients:
        notice = Notice(id=new_id(), key=key, organisation_cvr=organisation, kind=kind,
                        recipients=list(recipients), subject=subject, text=text)
        session.add(notice)
        session.flush()  # the unique key decides here, before the rest of the caller's work commits
    record(session, None, "notification", actor="postbud", reason=subject,
           detail={"organisation": organisation, "to": list(recipients), "kind": kind,
                   "notice": notice.id if notice else None, "text": text, **(detail or {})})
    if not recipients:
        log.warning("notice for organisation %s has nobody to go to (no administrators configured): %s",
                    organisation, subject)
    return notice


class People:
    """Who is told what, per organisation: administrators, and processors (who place held letters)."""

    def __init__(self, administrators: Mapping[str, Iterable[str]],
                 processors: Mapping[str, Iterable[str]] | None = None) -> None:
        self._administrators = {k: tuple(v) for k, v in administrators.items()}
        self._processors = {k: tuple(v) for k, v in (processors or {}).items()}

    def of(self, organisation: str, audience: Audience) -> tuple[str, ...]:
        admins = self._administrators.get(organisation, ())
        processors = self._processors.get(organisation, ())
        if audience == "administrators":
            return admins
        if audience == "processors":
            return processors or admins
        return tuple(dict.fromkeys((*processors, *admins)))


class TraceNotifier:
    """The Notifier: queues each notice for e-mail (and records it in the trace) in its own transaction."""

    def __init__(self, store: Store, administrators: Mapping[str, Iterable[str]],
                 processors: Mapping[str, Iterable[str]] | None = None) -> None:
        self._store = store
        self.people = People(administrators, processors)

    def notify(self, organisation: str, subject: str, text: str, *, key: str | None = None,
               kind: str = "notification", audience: Audience = "administrators") -> None:
        recipients = self.people.of(organisation, audience)
        try:
            with self._store.transaction() as session:
                queue_notice(session, organisation, recipients, subject, text,
                             key=key or f"{kind}:{new_id()}", kind=kind)
        except IntegrityError:
            log.info("notice %s was queued already", key)
            return
        log.warning("notice for %s (%d recipients): %s", organisation, len(recipients), subject)
