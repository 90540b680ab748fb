"""Retention (GDPR): purge what each organisation's retention period no longer allows us to keep.

A purged message stays as a tombstone: its content, original, attachments, title, parties and the
personal parts of its routing decisions, outbox rows and trace are gone, while the id, mailbox,
provider message id, status and timestamps remain, so collection stays idempotent (the provider's id
is still known) and statistics keep their counts; a letter that never reached an outcome (held,
waiting to be routed or delivered) becomes `expired`, so it leaves the queue and the waiting counts.
Trace events older than the period are deleted. Every purge first runs the held letters' schedule
(`postbud.deadlines`): a held letter gets its final warning before its purge, at the latest in the
run that purges it, and that warning is queued as a notice whoever runs the purge. Erasure of one
data subject lives in `postbud.erasure` (re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select as sa_select, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from core.config import Config, OrganisationConfig
from postbud.erasure import ErasureReceipt, SubjectError, erase  # re-exported: one place for GDPR tools
from core.lifecycle import record
from core.metrics import Metrics
from core.storage.db import Store
from core.storage.models import (
    Attachment,
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    Notice,
    NoticeStatus,
    RoutingDecision,
    TraceEvent,
)
from postbud.deadlines import run_schedule

log = logging.getLogger(__name__)

ACTOR = "retention"
RUN_KIND = "purge_run"  # the summary event of one purge: message_id NULL, counts only
KEPT_SYSTEM_KINDS = ("erased",)
UNFINISHED = (MessageStatus.COLLECTED, MessageStatus.ROUTED, MessageStatus.HELD, MessageStatus.DELIVERING)  # erasure receipts are the proof owed to data subjects; never purged
DEFAULT_RETENTION_DAYS: int = OrganisationConfig.model_fields["retention_days"].default


@dataclass
class PurgeCounts:
    """Rows purged (or, in a dry run, due) per kind."""

    content: int = 0  # messages made tombstones
    attachment: int = 0
    original: int = 0
    trace_event: int = 0
    escalated: int = 0  # held letters given their final warning in this run (due, in a dry run)

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
    told: dict[str, int] = field(default_factory=dict)  # held letters told per schedule stage
    notices: int = 0  # sent or failed notices older than the longest retention, deleted

    def to_json(self) -> dict[str, object]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "totals": asdict(self.totals),
            "system_trace_events": self.system_trace_events,
            "told": dict(self.told),
            "notices": self.notices,
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
    metrics: Metrics | None = None,
) -> PurgeReport:
    """Purge everything older than each organisation's retention at `now`; one transaction per batch.

    The held letters' schedule runs first, so no held letter is purged without its final warning."""
    if now.tzinfo is None:
        raise ValueError("purge needs an aware UTC time")
    told = run_schedule(store, config, now, dry_run=dry_run, metrics=metrics)
    results = []
    totals = PurgeCounts()
    plan = retention_plan(store, config)
    for cvr, days in plan:
        cutoff = now - timedelta(days=days)
        counts = PurgeCounts()
        counts.escalated = told.get(cvr, {}).get("final_warning", 0)
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
    old_notices = select(Notice.id).where(col(Notice.created_at) < system_cutoff,
                                          col(Notice.status) != NoticeStatus.PENDING)
    if dry_run:
        with store.read() as session:
            system = session.exec(select(func.count()).select_from(_system_events(system_cutoff).subquery())).one()
            notices = session.exec(select(func.count()).select_from(old_notices.subquery())).one()
    else:
        system = _delete_events(store, _system_events(system_cutoff), batch_size, metrics)
        with store.transaction() as session:
            notices = session.exec(delete(Notice).where(col(Notice.id).in_(old_notices))).rowcount or 0
    by_kind: dict[str, int] = {}
    for per_org in told.values():
        for kind, n in per_org.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
    report = PurgeReport(now, dry_run, tuple(results), int(system), totals, by_kind, int(notices))
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
) -> PurgeReport | None:
    """The daemon's housekeeping job: the held letters' schedule at every run, and the purge when the
    last one is `every` old (checked in the database, so restarts and several instances still purge
    once a day); always refresh the last-run gauge."""
    previous = last_run(store)
    if previous is not None:
        metrics.purge_last_run.set(previous.timestamp())
        if now - previous < every:
            run_schedule(store, config, now, metrics=metrics)
            return None
    report = purge(store, config, now, metrics=metrics)
    if store.is_sqlite:
        # Refresh the planner's statistics after a large delete, so search keeps its covering indexes.
        with store.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA optimize")
    return report


# -- purging ----------------------------------------------------------------------------------


def _due_messages(cvr: str, cutoff: datetime) -> SelectOfScalar[str]:
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
    # A letter that never reached an outcome is gone now: out of the queue and the waiting counts.
    session.exec(
        update(Message).where(col(Message.id).in_(ids), col(Message.status).in_(UNFINISHED))
        .values(status=MessageStatus.EXPIRED).execution_options(**sync)
    )
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


def _org_events(cvr: str, cutoff: datetime) -> SelectOfScalar[int | None]:
    """Events older than the cutoff left after the tombstoning (those of messages purged in earlier
    runs that were younger then). An event is never older than its message, hence `received_at`."""
    org_messages = sa_select(col(Message.id)).where(
        col(Message.organisation_cvr) == cvr, col(Message.received_at) < cutoff
    )
    return select(col(TraceEvent.id)).where(
        col(TraceEvent.at) < cutoff, col(TraceEvent.message_id).in_(org_messages)
    )


def _system_events(cutoff: datetime) -> SelectOfScalar[int | None]:
    return select(col(TraceEvent.id)).where(
        col(TraceEvent.message_id).is_(None), col(TraceEvent.at) < cutoff,
        col(TraceEvent.kind).not_in(KEPT_SYSTEM_KINDS),
    )


def _delete_events(store: Store, query: SelectOfScalar[int | None], batch_size: int, metrics: Metrics | None) -> int:
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


__all__ = ["ErasureReceipt", "PurgeReport", "SubjectError", "erase", "purge", "run_housekeeping"]
