"""The statistics page's figures: whole periods ending now (the last 30 days, 12 months or 5 years), read
as postbud/stats.py reads them (the daily roll-up for whole days, today from the messages)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

from core.storage.db import Store
from postbud.stats import By, PeriodStats, stats

# How many periods a view shows, the current one last.
PERIODS: dict[str, int] = {"day": 30, "month": 12, "year": 5}


def span_start(by: By, now: datetime) -> datetime:
    """The start of the first period shown: midnight (UTC) of the first day, month or year."""
    today = now.astimezone(timezone.utc).date()
    if by == "day":
        first = date.fromordinal(today.toordinal() - PERIODS["day"] + 1)
    elif by == "month":
        months = today.year * 12 + today.month - 1 - (PERIODS["month"] - 1)
        first = date(months // 12, months % 12 + 1, 1)
    else:
        first = date(today.year - PERIODS["year"] + 1, 1, 1)
    return datetime.combine(first, time(), tzinfo=timezone.utc)


def figures(store: Store, organisations: tuple[str, ...], by: By, now: datetime) -> list[PeriodStats]:
    """Collected, routed by rule/model/hand/fallback, held, delivered, failed and the automation rate per
    period, for `organisations` together (never anyone else's)."""
    return stats(store, organisations, by, now, since=span_start(by, now), latency=False)
