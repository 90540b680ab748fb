"""Retention (GDPR): purge what each organisation's retention period no longer allows us to keep.

A purged message stays as a tombstone: its content, original, attachments, title, parties and the
personal parts of its routing decisions, outbox rows and trace are gone, while the id, mailbox,
provider message id, status and timestamps remain, so collection stays idempotent (the provider's id
is still known) and statistics keep their counts. Trace events older than the period are deleted.
A held message is escalated (trace event + callback) `escalate_before` ahead of its purge, and at
the latest in the run that purges it. Erasure of one data subject lives in `postbud.erasure`
(re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, insert, literal, select as sa_select, update
from sqlmodel import Session, col, select

from core.config import Config, OrganisationConfig
from postbud.erasure import ErasureReceipt, SubjectError, erase  # re-exported: one place for GDPR tools
from core.lifecycle import record
from core.metrics import Metrics
from core.notify import Notifier
from core.storage.db import Store
from core.storage.models import (
    Attachment,
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    RoutingDecision,
    TraceEvent,
)

log = logging.getLogger(__name__)

ACTOR = "retention"
RUN_KIND = "purge_run"  # the summary event of one purge: message_id NULL, counts only
KEPT_SYSTEM_KINDS = ("erased",)  # erasure receipts are the proof owed to data subjects; never purged
DEFAULT_RETENTION_DAYS: int = OrganisationConfig.model_fields["retention_days"].default


@dataclass(frozen=True)
class Escalation:
    """A held message that retention purges at `purge_at`: someone must place it before then."""

    message_id: str
    organisation: str
    received_at: datetime
    purge_at: datetime


EscalationHandler = Callable[[Escalation], None]


@dataclass
class PurgeCounts:
    """Rows purged (or, in a dry run, due) per kind."""

    content: int = 0  # messages made tombstones
    attachment: int = 0
    original: int = 0
    trace_event: int = 0
    escalated: int = 0

    def add(self, other: PurgeCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class OrganisationPurge:
    organisation: str
    retention_days: int
    cutoff: datetime
    counts: PurgeCounts


@dataclass(frozen=True)
class PurgeReport:
    now: datetime
    dry_run: bool
    organisations: tuple[OrganisationPurge, ...]
    system_trace_events: int = 0
    totals: PurgeCounts = field(default_factory=PurgeCounts)

    def to_json(self) -> dict[str, object]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "totals": asdict(self.totals),
            "system_trace_events": self.system_trace_events,
            "organisations": [
                {
                    "organisation": o.organisation,
                    "retention_days": o.retention_days,
                    "cutoff": o.cutoff.isoformat(),
                    **asdict(o.counts),
                }
                for o in self.organisations
            ],
        }


def _log_escalation(escalation: Escalation) -> None:
    log.warning(
        "held message %s (organisation %s) is purged by retention at %s unless placed before",
        escalation.message_id, escalation.organisation, escalation.purge_at.isoformat(),
    )


def escalate_to(notifier: Notifier) -> EscalationHandler:
    """Escalations as notifications to the organisation's administrators (ids and dates only)."""

    def handler(escalation: Escalation) -> None:
        notifier.notify(
            escalation.organisation,
            "held message will be purged by retention",
            f"message {escalation.message_id} has waited since {escalation.received_at:%Y-%m-%d}; place it "
            f"before {escalation.purge_at:%Y-%m-%d %H:%M} UTC or its content is purged",
        )

    return handler


def retention_plan(store: Store, config: Config) -> list[tuple[str, int]]:
    """(CVR, retention days) for every configured organisation and every CVR found among messages."""
    days = {org.cvr: org.retention_days for org in config.organisations}
    with store.read() as session:
        stored = session.exec(select(Message.organisation_cvr).distinct()).all()
    for cvr in stored:
        days.setdefault(cvr, DEFAULT_RETENTION_DAYS)
    return sorted(days.items())


def purge(
    store: Store,
    config: Config,
    now: datetime,
    *,
    dry_run: bool = False,
    batch_size: int = 1000,
    escalate_before: timedelta = timedelta(days=7),
    escalate: EscalationHandler = _log_escalation,
    metrics: Metrics | None = None,
) -> PurgeReport:
    """Purge everything older than each organisation's retention at `now`; one transaction per batch."""
    if now.tzinfo is None:
        raise ValueError("purge needs an aware UTC time")
    results = []
    totals = PurgeCounts()
    plan = retention_plan(store, config)
    for cvr, days in plan:
        cutoff = now - timedelta(days=days)
        counts = PurgeCounts()
        counts.escalated = _escalate(store, cvr, cutoff, cutoff + escalate_before, now, dry_run, escalate)
        if dry_run:
            _count_due(store, cvr, cutoff, counts)
        else:
            _purge_messages(store, cvr, cutoff, now, batch_size, counts, metrics)
            counts.trace_event += _delete_events(store, _org_events(cvr, cutoff), batch_size, metrics)
        results.append(OrganisationPurge(cvr, days, cutoff, counts))
        totals.add(counts)
    # Events without a message (run summaries, notifications) hold no personal data: longest period.
    longest = max([d for _, d in plan], default=DEFAULT_RETENTION_DAYS)
    system_cutoff = now - timedelta(days=longest)
    if dry_run:
        with store.read() as session:
            system = session.exec(select(func.count()).select_from(_system_events(system_cutoff).subquery())).one()
    else:
        system = _delete_events(store, _system_events(system_cutoff), batch_size, metrics)
    report = PurgeReport(now, dry_run, tuple(results), int(system), totals)
    if not dry_run:
        with store.transaction() as session:
            event = record(session, None, RUN_KIND, actor=ACTOR,
                           detail={"totals": asdict(totals), "system_trace_events": int(system),
                                   "organisations": len(results)})
            event.at = now
        if metrics is not None:
            metrics.purge_last_run.set(now.timestamp())
    log.info("retention purge%s: %s", " (dry run)" if dry_run else "", asdict(totals))
    return report


def last_run(store: Store) -> datetime | None:
    """When the last (real) purge finished, from its summary event."""
    with store.read() as session:
        return session.exec(
            select(func.max(TraceEvent.at)).where(TraceEvent.kind == RUN_KIND, col(TraceEvent.message_id).is_(None))
        ).one()


def run_housekeeping(
    store: Store,
    config: Config,
    metrics: Metrics,
    now: datetime,
    *,
    every: timedelta = timedelta(days=1),
    escalate: EscalationHandler = _log_escalation,
) -> PurgeReport | None:
    """The daemon's housekeeping job: purge when the last run is `every` old (checked in the database,
    so restarts and several instances still purge once a day); always refresh the last-run gauge."""
    previous = last_run(store)
    if previous is not None:
        metrics.purge_last_run.set(previous.timestamp())
        if now - previous < every:
            return None
    report = purge(store, config, now, metrics=metrics, escalate=escalate)
    if store.is_sqlite:
        # Refresh the planner's statistics after a large delete, so search keeps its covering indexes.
        with store.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA optimize")
    return report


# -- escalation -------------------------------------------------------------------------------


def _escalate(
    store: Store, cvr: str, cutoff: datetime, warn_cutoff: datetime, now: datetime, dry_run: bool,
    handler: EscalationHandler,
) -> int:
    already = exists().where(col(TraceEvent.message_id) == col(Message.id), col(TraceEvent.kind) == "escalated")
    query = select(Message.id, Message.received_at).where(
        Message.organisation_cvr == cvr,
        Message.status == MessageStatus.HELD,
        col(Message.purged_at).is_(None),
        col(Message.received_at) < warn_cutoff,
        ~already,
    )
    with store.read() as session:
        due = session.exec(query).all()
    if dry_run or not due:
        return len(due)
    with store.transaction() as session:
        for message_id, received_at in due:
            purge_at = max(received_at + (now - cutoff), now)
            event = record(session, message_id, "escalated", actor=ACTOR,
                           reason="held message is purged by retention unless placed first",
                           detail={"purge_at": purge_at.isoformat()})
            event.at = now
    for message_id, received_at in due:
        handler(Escalation(message_id, cvr, received_at, max(received_at + (now - cutoff), now)))
    return len(due)


# -- purging ----------------------------------------------------------------------------------


def _due_messages(cvr: str, cutoff: datetime):  # type: ignore[no-untyped-def]
    return select(Message.id).where(
        Message.organisation_cvr == cvr, col(Message.received_at) < cutoff, col(Message.purged_at).is_(None)
    )


def _count_due(store: Store, cvr: str, cutoff: datetime, counts: PurgeCounts) -> None:
    due = _due_messages(cvr, cutoff)
    with store.read() as session:
        counts.content = session.exec(select(func.count()).select_from(due.subquery())).one()
        counts.original = session.exec(
            select(func.count()).select_from(due.where(col(Message.raw).is_not(None)).subquery())
        ).one()
        counts.attachment = session.exec(
            select(func.count()).select_from(Attachment).where(col(Attachment.message_id).in_(due))
        ).one()
        counts.trace_event = session.exec(select(func.count()).select_from(_org_events(cvr, cutoff).subquery())).one()


def _purge_messages(
    store: Store, cvr: str, cutoff: datetime, now: datetime, batch_size: int, counts: PurgeCounts,
    metrics: Metrics | None,
) -> None:
    while True:
        with store.transaction() as session:
            rows = session.exec(
                select(Message.id, col(Message.raw).is_not(None))
                .where(Message.organisation_cvr == cvr, col(Message.received_at) < cutoff,
                       col(Message.purged_at).is_(None))
                .limit(batch_size)
            ).all()
            if not rows:
                return
            ids = [r[0] for r in rows]
            batch = PurgeCounts(content=len(ids), original=sum(1 for r in rows if r[1]))
            batch.attachment, batch.trace_event = _tombstone(session, ids, now, cutoff)
        counts.add(batch)
        if metrics is not None:
            for kind in ("content", "original", "attachment", "trace_event"):
                metrics.purged.labels(kind).inc(getattr(batch, kind))


def _tombstone(session: Session, ids: Sequence[str], now: datetime, cutoff: datetime) -> tuple[int, int]:
    """Strip the personal data of `ids` in the caller's transaction; returns attachments and events deleted."""
    sync = {"synchronize_session": False}
    attachments = session.exec(delete(Attachment).where(col(Attachment.message_id).in_(ids)))
    events = session.exec(
        delete(TraceEvent).where(col(TraceEvent.message_id).in_(ids), col(TraceEvent.at) < cutoff)
    )
    session.exec(
        update(Message).where(col(Message.id).in_(ids)).values(
            content=None, raw=None, title="", sender_id=None, sender_name=None, recipient_id=None,
            status_reason="content purged by retention", purged_at=now,
        ).execution_options(**sync)
    )
    session.exec(
        update(RoutingDecision).where(col(RoutingDecision.message_id).in_(ids))
        .values(recipients=[], explanation={}).execution_options(**sync)
    )
    # Outbox rows keep channel, status and times (statistics) but not who they went to; one still
    # waiting can no longer be sent, its content is gone.
    session.exec(
        update(Delivery).where(
            col(Delivery.message_id).in_(ids),
            col(Delivery.status).in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.HELD]),
        ).values(status=DeliveryStatus.FAILED).execution_options(**sync)
    )
    session.exec(
        update(Delivery).where(col(Delivery.message_id).in_(ids)).values(
            recipient=literal("purged:").concat(Delivery.id),
            idempotency_key=literal("purged:").concat(Delivery.id),
            last_reply=None, lease_owner=None, lease_expires_at=None,
        ).execution_options(**sync)
    )
    session.exec(
        update(TraceEvent).where(col(TraceEvent.message_id).in_(ids)).values(detail={}).execution_options(**sync)
    )
    # Core executemany: one statement for the batch instead of one ORM insert per event.
    session.connection().execute(
        insert(TraceEvent),
        [{"message_id": i, "at": now, "kind": "purged", "actor": ACTOR, "reason": "retention period ended",
          "detail": {}} for i in ids],
    )
    return int(attachments.rowcount or 0), int(events.rowcount or 0)


def _org_events(cvr: str, cutoff: datetime):  # type: ignore[no-untyped-def]
    """Events older than the cutoff left after the tombstoning (those of messages purged in earlier
    runs that were younger then). An event is never older than its message, hence `received_at`."""
    org_messages = sa_select(col(Message.id)).where(
        col(Message.organisation_cvr) == cvr, col(Message.received_at) < cutoff
    )
    return select(TraceEvent.id).where(
        col(TraceEvent.at) < cutoff, col(TraceEvent.message_id).in_(org_messages)
    )


def _system_events(cutoff: datetime):  # type: ignore[no-untyped-def]
    return select(TraceEvent.id).where(
        col(TraceEvent.message_id).is_(None), col(TraceEvent.at) < cutoff,
        col(TraceEvent.kind).not_in(KEPT_SYSTEM_KINDS),
    )


def _delete_events(store: Store, query, batch_size: int, metrics: Metrics | None) -> int:  # type: ignore[no-untyped-def]
    deleted = 0
    while True:
        with store.transaction() as session:
            ids = session.exec(query.limit(batch_size)).all()
            if not ids:
                return deleted
            session.exec(delete(TraceEvent).where(col(TraceEvent.id).in_(ids)))
        deleted += len(ids)
        if metrics is not None:
            metrics.purged.labels("trace_event").inc(len(ids))


__all__ = ["ErasureReceipt", "Escalation", "PurgeReport", "SubjectError", "erase", "escalate_to", "purge",
           "run_housekeeping"]
