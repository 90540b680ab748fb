"""A held letter's life as one schedule: reminders, escalation at the decision deadline, final warning.

    arrival ── reminder(s) ──> decision deadline: escalation ──> final warning ──> retention purge
               (processors)    (administrators + processors)    (both)

Each stage is told once per letter: the stage's trace event on the letter and the notice go in one
transaction, and only the latest stage due is told (a daemon that was down for a week sends the
escalation, not the reminders it missed as well). The daemon's housekeeping and every purge, by
the daemon or by hand, run this first, so whichever runs first tells and the other finds it done.
A notice lists the letters (id, age, and the sender's name if the organisation allows it).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.config import Config, OrganisationConfig
from core.lifecycle import record
from core.metrics import Metrics
from core.notify import Audience, People, queue_notice
from core.storage.db import Store
from core.storage.models import Message, MessageStatus, TraceEvent

log = logging.getLogger(__name__)

ACTOR = "deadlines"
EVENTS = ("reminded", "escalated", "purge_warned")


@dataclass(frozen=True)
class Stage:
    name: str  # unique within the schedule: reminder-1, reminder-2, escalation, final_warning
    kind: str  # reminder, escalation, final_warning (notice kind, metric label)
    event: str  # the trace event on each letter
    after: timedelta  # age at which it is due
    audience: Audience


@dataclass(frozen=True)
class HeldLetter:
    id: str
    received_at: datetime
    sender: str | None


def stages(org: OrganisationConfig) -> list[Stage]:
    """The organisation's schedule, in the order the stages fall due."""
    out = [Stage(f"reminder-{i}", "reminder", "reminded", timedelta(hours=h), "processors")
           for i, h in enumerate(sorted(org.held_reminders_hours), start=1)]
    out.append(Stage("escalation", "escalation", "escalated", timedelta(days=org.decision_deadline_days),
                     "everyone"))
    out.append(Stage("final_warning", "final_warning", "purge_warned",
                     timedelta(days=org.retention_days - org.final_warning_days), "everyone"))
    return sorted(out, key=lambda s: s.after)


def deadlines(config: Config, organisation: str, received_at: datetime) -> tuple[datetime, datetime]:
    """A held letter's decision deadline and the day retention purges it (what the queue shows)."""
    org = next((o for o in config.organisations if o.cvr == organisation), None) \
        or OrganisationConfig(cvr=organisation, name=organisation)
    return (received_at + timedelta(days=org.decision_deadline_days),
            received_at + timedelta(days=org.retention_days))


def organisations(store: Store, config: Config) -> list[OrganisationConfig]:
    """Configured organisations, and defaults for CVRs found among held letters (told in the trace)."""
    known = {o.cvr: o for o in config.organisations}
    with store.read() as session:
        stored = session.exec(
            select(Message.organisation_cvr).where(Message.status == MessageStatus.HELD).distinct()
        ).all()
    for cvr in stored:
        known.setdefault(cvr, OrganisationConfig(cvr=cvr, name=cvr))
    return [known[c] for c in sorted(known)]


def run_schedule(store: Store, config: Config, now: datetime, *, dry_run: bool = False,
                 metrics: Metrics | None = None) -> dict[str, dict[str, int]]:
    """Tell every stage now due; returns per organisation the letters told per stage kind (due, in
    a dry run)."""
    people = People({o.cvr: o.administrators for o in config.organisations},
                    {o.cvr: o.processors for o in config.organisations})
    told: dict[str, dict[str, int]] = {}
    for org in organisations(store, config):
        schedule = stages(org)
        for stage, letters in _due(store, org, schedule, now).items():
            n = len(letters) if dry_run else _tell(store, org, people, schedule, stage, letters, now)
            if not n:
                continue
            per_org = told.setdefault(org.cvr, {})
            per_org[stage.kind] = per_org.get(stage.kind, 0) + n
            if metrics is not None and not dry_run:
                metrics.held_notices.labels(stage.kind).inc(n)
                if stage.kind == "final_warning":
                    metrics.retention_escalations.inc(n)
    return told


def _due(store: Store, org: OrganisationConfig, schedule: list[Stage], now: datetime) -> dict[Stage, list[HeldLetter]]:
    """Per stage, the held letters whose latest due stage it is and which were not told it (or later)."""
    with store.read() as session:
        letters = [HeldLetter(*row) for row in session.exec(
            select(Message.id, Message.received_at, Message.sender_name).where(
                Message.organisation_cvr == org.cvr, Message.status == MessageStatus.HELD,
                col(Message.purged_at).is_(None),
            ).order_by(col(Message.received_at))
        )]
        if not letters:
            return {}
        done = _told(session, [m.id for m in letters], schedule)
    due: dict[Stage, list[HeldLetter]] = defaultdict(list)
    for letter in letters:
        reached = [i for i, s in enumerate(schedule) if letter.received_at + s.after <= now]
        if reached and reached[-1] > done.get(letter.id, -1):
            due[schedule[reached[-1]]].append(letter)
    return due


def _told(session: Session, ids: list[str], schedule: list[Stage]) -> dict[str, int]:
    """Per letter, the position in `schedule` of the latest stage it was told (absent: none)."""
    index = {s.name: i for i, s in enumerate(schedule)}
    done: dict[str, int] = {}
    for message_id, kind, detail in session.exec(
        select(TraceEvent.message_id, TraceEvent.kind, TraceEvent.detail).where(
            col(TraceEvent.message_id).in_(ids), col(TraceEvent.kind).in_(EVENTS))
    ).all():
        name = (detail or {}).get("stage")
        if name is None:  # before the schedule: one `escalated`, the retention warning had purge_at
            name = "final_warning" if kind == "escalated" and "purge_at" in (detail or {}) else "escalation"
        done[str(message_id)] = max(done.get(str(message_id), -1), index.get(name, -1))
    return done


def _tell(store: Store, org: OrganisationConfig, people: People, schedule: list[Stage], stage: Stage,
          letters: list[HeldLetter], now: datetime) -> int:
    """The notice and each letter's stage event, in one transaction; the letters told (0 when another
    run told them first, or they were placed meanwhile)."""
    try:
        with store.transaction() as session:
            # Lock the letters: another instance running the schedule now waits here, then finds
            # what this one told (PostgreSQL; SQLite has one writer anyway).
            still = set(session.exec(
                select(Message.id).where(col(Message.id).in_([m.id for m in letters]),
                                         Message.status == MessageStatus.HELD, col(Message.purged_at).is_(None))
                .with_for_update()
            ).all())
            done = _told(session, sorted(still), schedule)
            position = schedule.index(stage)
            letters = [m for m in letters if m.id in still and done.get(m.id, -1) < position]
            if not letters:
                return 0
            ids = sorted(m.id for m in letters)
            key = f"{stage.name}:{org.cvr}:{hashlib.sha256(','.join(ids).encode()).hexdigest()[:32]}"
            subject, text = compose(org, stage, letters, now)
            notice = queue_notice(session, org.cvr, people.of(org.cvr, stage.audience), subject, text,
                                  key=key, kind=stage.kind, detail={"stage": stage.name, "letters": len(ids)})
            for letter in letters:
                purge_at = letter.received_at + timedelta(days=org.retention_days)
                event = record(session, letter.id, stage.event, actor=ACTOR, reason=subject,
                               detail={"stage": stage.name, "notice": notice.id if notice else None,
                                       "purge_at": purge_at.isoformat()})
                event.at = now
    except IntegrityError:
        log.info("%s for %d letters of %s was told by another run", stage.name, len(letters), org.cvr)
        return 0
    log.warning("%s: %d held letters of organisation %s", stage.name, len(letters), org.cvr)
    return len(letters)


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"


def compose(org: OrganisationConfig, stage: Stage, letters: list[HeldLetter], now: datetime) -> tuple[str, str]:
    """Subject and text: counts, ages, ids, dates (and senders' names if allowed); never a title or content."""
    n = len(letters)
    noun = "held letter" if n == 1 else "held letters"
    deadline = timedelta(days=org.decision_deadline_days)
    retention = timedelta(days=org.retention_days)
    if stage.kind == "reminder":
        subject = f"Reminder: {n} {noun} wait for a decision ({org.cvr})"
        lead = (f"{n} {noun} of {org.name} ({org.cvr}) wait in the manual queue. Place each before its "
                f"decision deadline, {org.decision_deadline_days:g} days after it arrived.")
    elif stage.kind == "escalation":
        subject = f"Escalation: {n} {noun} passed the decision deadline ({org.cvr})"
        lead = (f"{n} {noun} of {org.name} ({org.cvr}) waited past the decision deadline of "
                f"{org.decision_deadline_days:g} days without a decision.")
    else:
        subject = f"Final warning: {n} {noun} will be purged by retention ({org.cvr})"
        lead = (f"{n} {noun} of {org.name} ({org.cvr}) are still undecided. Retention removes their content "
                f"{org.retention_days} days after arrival; place them before the date shown, or they are gone.")
    header = f"{'letter id':<34}{'age':>12}  {'deadline':<17}  {'purged on':<17}"
    lines = [lead, "", header + ("  sender" if org.notices_show_senders else "")]
    for m in letters:
        row = (f"{m.id:<34}{_age((now - m.received_at).total_seconds()):>12}  "
               f"{m.received_at + deadline:%Y-%m-%d %H:%M}  {max(m.received_at + retention, now):%Y-%m-%d %H:%M}")
        if org.notices_show_senders:
            row += f"  {m.sender or '(unknown)'}"
        lines.append(row)
    return subject, "\n".join(lines)
