"""The daily roll-up of the statistics: counts of letters per organisation, day received (UTC) and measure.

The database keeps it (migration 0008's triggers, in the transaction of every change to a letter's
status, its latest routing decision or its delivered outbox rows) as rows of changes: +1 for the
status a letter entered, -1 for the one it left. Their sum per organisation, day and measure is the
count; `settle` folds the changes into one row each, so reading a year costs a few thousand rows.

Measures: `status:<message status>` (their sum is the letters collected), `routed:<decided_by>` (the
latest decision routed the letter: rule, model, hand or default) and `channel:<channel>` (delivered
outbox rows). A migration that rebuilds one of the tables message, routing_decision or delivery on
SQLite (batch mode) drops its triggers and must create them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from sqlalchemy import Index, delete, func, insert, text
from sqlmodel import Field, SQLModel, col, select

from core.storage.db import Store

STATUS = "status:"
ROUTED = "routed:"
CHANNEL = "channel:"
# Any fixed number: instances settling at once on one PostgreSQL database take turns.
_SETTLE_LOCK = 0x706F737462756402


class DailyCount(SQLModel, table=True):
    __tablename__ = "daily_count"
    __table_args__ = (
        # Reading an organisation's span is a range scan of the index alone.
        Index("ix_daily_count_org_day", "organisation_cvr", "day", "measure", "count"),
        Index("ix_daily_count_settled", "settled", "organisation_cvr", "day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organisation_cvr: str = Field(max_length=8)
    day: date
    measure: str = Field(max_length=64)
    count: int
    settled: bool = False


def counts(store: Store, organisations: Iterable[str] | None, first: date | None,
           last: date) -> dict[tuple[date, str], int]:
    """The counts per (day, measure) for days in [first, last] (first None: from the oldest), summed over
    `organisations` (None: all); zero counts left out."""
    query = (select(col(DailyCount.day), col(DailyCount.measure), func.sum(col(DailyCount.count)))
             .where(col(DailyCount.day) <= last).group_by(col(DailyCount.day), col(DailyCount.measure)))
    if organisations is not None:
        query = query.where(col(DailyCount.organisation_cvr).in_(tuple(organisations)))
    if first is not None:
        query = query.where(col(DailyCount.day) >= first)
    with store.read() as session:
        rows = session.exec(query).all()
    return {(day, measure): int(n) for day, measure, n in rows if n}


def settle(store: Store, *, days_per_turn: int = 400) -> int:
    """Fold the changes into one settled row per organisation, day and measure; returns the rows folded.

    Exactly the rows deleted are summed (DELETE … RETURNING), so a change committed meanwhile by
    another transaction is either folded in or left for the next turn, never lost or counted twice.
    """
    folded = 0
    more = True
    while more:
        with store.transaction() as session:
            if not store.is_sqlite:
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SETTLE_LOCK})
            keys = session.exec(select(col(DailyCount.organisation_cvr), col(DailyCount.day))
                                .where(col(DailyCount.settled) == False).distinct().limit(days_per_turn)).all()  # noqa: E712
            # A full turn may leave more; a partial one has all there was (changes keep coming meanwhile).
            more = len(keys) == days_per_turn
            days: dict[str, list[date]] = defaultdict(list)
            for org, day in keys:
                days[org].append(day)
            sums: dict[tuple[str, date, str], int] = defaultdict(int)
            for org, wanted in days.items():
                gone = session.execute(
                    delete(DailyCount).where(col(DailyCount.organisation_cvr) == org, col(DailyCount.day).in_(wanted))
                    .returning(col(DailyCount.day), col(DailyCount.measure), col(DailyCount.count))).all()
                folded += len(gone)
                for day, measure, n in gone:
                    sums[(org, day, measure)] += n
            rows = [{"organisation_cvr": org, "day": day, "measure": measure, "count": n, "settled": True}
                    for (org, day, measure), n in sums.items() if n]
            if rows:
                session.execute(insert(DailyCount), rows)
    return folded
