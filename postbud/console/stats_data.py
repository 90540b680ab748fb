"""The statistics page's figures counted in the database (GROUP BY period), not row by row in Python:
the same definitions as postbud/stats.py for the figures the page shows, fast on a million events."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from core.storage.db import Store
from core.storage.models import Message, MessageStatus, RoutingDecision
from postbud.stats import ROUTED_BY, By, PeriodStats, period_key

SPAN = {"day": timedelta(days=30), "month": timedelta(days=365), "year": timedelta(days=5 * 365)}
_SQLITE = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
_POSTGRES = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY"}


def _period(store: Store, by: By) -> Any:
    if store.is_sqlite:
        return func.strftime(_SQLITE[by], Message.received_at)  # stored as UTC text
    return func.to_char(func.timezone("UTC", Message.received_at), _POSTGRES[by])


def _keys(first: date, last: date, by: By) -> list[str]:
    """Every period from `first` to `last`, so quiet periods show as zeros, not gaps."""
    keys: list[str] = []
    current = first
    while current <= last:
        key = {"day": current.isoformat(), "month": current.strftime("%Y-%m"), "year": str(current.year)}[by]
        if not keys or keys[-1] != key:
            keys.append(key)
        current += timedelta(days=1) if by == "day" else timedelta(days=28 if by == "month" else 365)
    last_key = period_key(datetime.combine(last, datetime.min.time()), by)
    if keys[-1] != last_key:
        keys.append(last_key)
    return keys


def figures(store: Store, organisations: tuple[str, ...], by: By, now: datetime) -> list[PeriodStats]:
    """Collected, routed by rule/model/hand/fallback, held, delivered, failed and the automation rate per
    period from `now - SPAN[by]` to `now`, for `organisations` together (never anyone else's)."""
    since = now - SPAN[by]
    period = _period(store, by).label("period")
    scope = (col(Message.organisation_cvr).in_(organisations), col(Message.received_at) >= since,
             col(Message.received_at) < now)
    # A letter's latest decision is the one no later decision of the same letter follows: an index
    # seek per decision (routing_decision.message_id), where joining a grouped subquery scanned it.
    later = aliased(RoutingDecision)
    newest = ~exists().where(col(later.message_id) == col(RoutingDecision.message_id),
                             col(later.id) > col(RoutingDecision.id))
    with store.read() as session:
        by_status = session.exec(select(period, Message.status, func.count()).where(*scope)
                                 .group_by(period, col(Message.status))).all()
        by_decider = session.exec(
            select(period, RoutingDecision.decided_by, func.count())
            .join(RoutingDecision, col(RoutingDecision.message_id) == col(Message.id))
            .where(*scope, col(RoutingDecision.action) == "route", newest)
            .group_by(period, col(RoutingDecision.decided_by))).all()
    out = {k: PeriodStats(k) for k in _keys(since.date(), now.date(), by)}
    for key, status, n in by_status:
        p = out.setdefault(key, PeriodStats(key))
        p.collected += n
        if status == MessageStatus.HELD:
            p.held += n
        elif status == MessageStatus.DELIVERED:
            p.delivered += n
        elif status == MessageStatus.FAILED:
            p.failed += n
    for key, decided_by, n in by_decider:
        if decided_by in ROUTED_BY:
            p = out.setdefault(key, PeriodStats(key))
            setattr(p, ROUTED_BY[decided_by], getattr(p, ROUTED_BY[decided_by]) + n)
    for p in out.values():
        automated = p.routed_by_rule + p.routed_by_model
        decided = automated + p.routed_by_fallback + p.routed_by_hand + p.held
        p.automation_rate = round(automated / decided, 4) if decided else None
    return [out[k] for k in sorted(out)]
