"""Statistics: messages collected, how they were routed, delivered and how fast, per day, month or year.

Figures belong to the period in which a message was received (UTC unless told otherwise):

- `routed_by_rule` / `_model` / `_hand`: messages whose latest routing decision routed them, by who
  decided. `routed_by_fallback`: routed by the organisation's `default_route` because neither a rule
  nor the model decided; it is counted apart, since it is what happens when automation did not work.
- `held`: messages waiting in the manual queue now. `delivered` / `failed`: messages in that state now.
- `automation_rate`: (rule + model) / (rule + model + fallback + hand + held); null when nothing was
  decided.
- `delivered_by_channel`: outbox rows delivered, per channel (a message may go to several people).
- `median_delivery_seconds`: from collection to the last delivery of each delivered message.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Literal

from sqlalchemy import func
from sqlmodel import col, select

from core.metrics import OpsReading
from core.storage import daily_counts
from core.storage.db import Store
from core.storage.models import (
    Delivery,
    DeliveryStatus,
    Mailbox,
    Message,
    MessageStatus,
    Organisation,
    RoutingDecision,
)

By = Literal["day", "month", "year"]
FIGURES = ("collected", "routed_by_rule", "routed_by_model", "routed_by_hand", "held", "delivered", "failed",
           "routed_by_fallback")
ROUTED_BY = {"rule": "routed_by_rule", "default": "routed_by_fallback", "model": "routed_by_model",
             "hand": "routed_by_hand"}


@dataclass
class PeriodStats:
    period: str
    collected: int = 0
    routed_by_rule: int = 0
    routed_by_model: int = 0
    routed_by_hand: int = 0
    held: int = 0
    delivered: int = 0
    failed: int = 0
    automation_rate: float | None = None
    delivered_by_channel: dict[str, int] = field(default_factory=dict)
    median_delivery_seconds: float | None = None
    routed_by_fallback: int = 0  # last: the older keys keep their place in the JSON

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Bucket:
    stats: PeriodStats
    latencies: list[float] = field(default_factory=list)


def period_key(at: datetime, by: By, tz: tzinfo = timezone.utc) -> str:
    return at.astimezone(tz).strftime({"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[by])


def _periods(first: date, last: date, by: By) -> Iterator[str]:
    """Every period key from `first` to `last`, so quiet days show as zeros, not gaps."""
    current = first
    while current <= last:
        yield {"day": current.isoformat(), "month": current.strftime("%Y-%m"), "year": str(current.year)}[by]
        if by == "day":
            current += timedelta(days=1)
        elif by == "month":
            current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
        else:
            current = date(current.year + 1, 1, 1)


Organisations = str | tuple[str, ...] | None  # one CVR, several, or None: all


def stats(
    store: Store,
    org: Organisations,
    by: By,
    now: datetime,
    *,
    since: datetime | None = None,
    tz: tzinfo = timezone.utc,
    latency: bool = True,
) -> list[PeriodStats]:
    """One entry per period from `since` (default: the oldest stored message) to `now`, oldest first.

    Whole UTC days are read from the daily roll-up (core/storage/daily_counts.py); the rest of the
    span (today so far, the part of a first day after `since`, or everything when `tz` is not UTC)
    is counted from the messages, as `recount` does. `latency=False` leaves the median out (it is the
    one figure that needs each delivered letter)."""
    return _periods_of(store, org, by, now, since, tz, rollup=True, latency=latency)


def recount(store: Store, org: Organisations, by: By, now: datetime, *, since: datetime | None = None,
            tz: tzinfo = timezone.utc) -> list[PeriodStats]:
    """`stats` counted from the messages row by row, the roll-up unused: the figures' definition."""
    return _periods_of(store, org, by, now, since, tz, rollup=False, latency=True)


def _periods_of(store: Store, org: Organisations, by: By, now: datetime, since: datetime | None, tz: tzinfo, *,
                rollup: bool, latency: bool) -> list[PeriodStats]:
    if by not in ("day", "month", "year"):
        raise ValueError(f"by must be day, month or year, not {by!r}")
    key: Callable[[datetime], str] = lambda at: period_key(at, by, tz)  # noqa: E731
    if rollup and tz is timezone.utc:
        buckets = _gather(store, org, since, now, key, latency=latency)
    else:
        buckets = _collect(store, org, since, now, key)
    if not buckets and since is None:
        return []
    first_key = min(buckets) if since is None else period_key(since, by, tz)
    last = now.astimezone(tz).date()
    return [_finish(buckets[k]) if k in buckets else PeriodStats(k) for k in _periods(_parse_key(first_key), last, by)]


def summarize(store: Store, org: str | None, since: datetime, until: datetime, *, label: str = "") -> PeriodStats:
    """The figures for messages received in [since, until) as one period."""
    buckets = _gather(store, org, since, until, lambda _: label, latency=True)
    return _finish(buckets[label]) if label in buckets else PeriodStats(label)


def _parse_key(key: str) -> date:
    parts = [int(p) for p in key.split("-")]
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)


def _filters(query: Any, org: Organisations, since: datetime | None, until: datetime) -> Any:
    query = query.where(col(Message.received_at) < until)
    if isinstance(org, str):
        query = query.where(Message.organisation_cvr == org)
    elif org is not None:
        query = query.where(col(Message.organisation_cvr).in_(org))
    if since is not None:
        query = query.where(col(Message.received_at) >= since)
    return query


def _midnight(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(timezone.utc).date(), time(), tzinfo=timezone.utc)


def _gather(store: Store, org: Organisations, since: datetime | None, until: datetime,
            key: Callable[[datetime], str], *, latency: bool) -> dict[str, _Bucket]:
    """The figures for [since, until): whole UTC days from the roll-up, the partial days at either end
    from the messages."""
    first_whole = None if since is None else _midnight(since) + (timedelta(days=1) if since != _midnight(since)
                                                                  else timedelta())
    end_whole = _midnight(until)
    if first_whole is not None and first_whole >= end_whole:
        return _collect(store, org, since, until, key)
    buckets: dict[str, _Bucket] = {}
    if since is not None and first_whole is not None and since < first_whole:
        _merge(buckets, _collect(store, org, since, first_whole, key))
    whole = _rolled_up(store, org, first_whole, end_whole, key)
    if latency:
        for at, seconds in _latencies(store, org, first_whole, end_whole):
            whole.setdefault(key(at), _Bucket(PeriodStats(key(at)))).latencies.append(seconds)
    _merge(buckets, whole)
    if end_whole < until:
        _merge(buckets, _collect(store, org, end_whole, until, key))
    return buckets


def _rolled_up(store: Store, org: Organisations, first: datetime | None, end: datetime,
               key: Callable[[datetime], str]) -> dict[str, _Bucket]:
    orgs = (org,) if isinstance(org, str) else org
    found = daily_counts.counts(store, orgs, first.date() if first else None, end.date() - timedelta(days=1))
    buckets: dict[str, _Bucket] = {}
    for (day, measure), n in sorted(found.items()):
        k = key(datetime.combine(day, time(), tzinfo=timezone.utc))
        s = buckets.setdefault(k, _Bucket(PeriodStats(k))).stats
        kind, _, name = measure.partition(":")
        if kind + ":" == daily_counts.STATUS:
            s.collected += n
            if name in _STATUS_FIGURES:
                setattr(s, name, getattr(s, name) + n)
        elif kind + ":" == daily_counts.ROUTED and name in ROUTED_BY:
            setattr(s, ROUTED_BY[name], getattr(s, ROUTED_BY[name]) + n)
        elif kind + ":" == daily_counts.CHANNEL:
            s.delivered_by_channel[name] = s.delivered_by_channel.get(name, 0) + n
    return {k: b for k, b in buckets.items() if b.stats.collected}


_STATUS_FIGURES = (MessageStatus.HELD, MessageStatus.DELIVERED, MessageStatus.FAILED)


def _latencies(store: Store, org: Organisations, since: datetime | None, until: datetime) -> list[tuple[datetime, float]]:
    """Each delivered letter's time received and seconds from collection to its last delivery."""
    with store.read() as session:
        rows = session.exec(_filters(
            select(Message.received_at, func.max(Delivery.delivered_at))
            .join(Delivery, col(Delivery.message_id) == col(Message.id))
            .where(Message.status == MessageStatus.DELIVERED, Delivery.status == DeliveryStatus.DELIVERED,
                   col(Delivery.delivered_at).is_not(None))
            .group_by(col(Message.id), col(Message.received_at)), org, since, until)).all()
    return [(at, (_aware(last) - at).total_seconds()) for at, last in rows]


def _merge(into: dict[str, _Bucket], more: dict[str, _Bucket]) -> None:
    for k, bucket in more.items():
        have = into.setdefault(k, _Bucket(PeriodStats(k)))
        for name in FIGURES:
            setattr(have.stats, name, getattr(have.stats, name) + getattr(bucket.stats, name))
        for channel, n in bucket.stats.delivered_by_channel.items():
            have.stats.delivered_by_channel[channel] = have.stats.delivered_by_channel.get(channel, 0) + n
        have.latencies.extend(bucket.latencies)


def _collect(
    store: Store, org: Organisations, since: datetime | None, until: datetime, key: Callable[[datetime], str]
) -> dict[str, _Bucket]:
    with store.read() as session:
        messages = session.exec(_filters(select(Message.id, Message.received_at, Message.status), org, since, until)).all()
        decisions = session.exec(
            _filters(
                select(RoutingDecision.message_id, RoutingDecision.action, RoutingDecision.decided_by)
                .join(Message, col(Message.id) == col(RoutingDecision.message_id))
                .order_by(col(RoutingDecision.id)),
                org, since, until,
            )
        ).all()
        deliveries = session.exec(
            _filters(
                select(Delivery.message_id, Delivery.channel, Delivery.delivered_at)
                .join(Message, col(Message.id) == col(Delivery.message_id))
                .where(Delivery.status == DeliveryStatus.DELIVERED),
                org, since, until,
            )
        ).all()
    latest: dict[str, tuple[str, str]] = {}
    for message_id, action, decided_by in decisions:  # ordered by id: the last one wins
        latest[message_id] = (action, decided_by)
    delivered_at: dict[str, datetime] = {}
    channels: dict[str, list[str]] = defaultdict(list)
    for message_id, channel, at in deliveries:
        channels[message_id].append(channel)
        if at is not None and (message_id not in delivered_at or at > delivered_at[message_id]):
            delivered_at[message_id] = at
    buckets: dict[str, _Bucket] = {}
    for message_id, received_at, status in messages:
        k = key(received_at)
        bucket = buckets.setdefault(k, _Bucket(PeriodStats(k)))
        s = bucket.stats
        s.collected += 1
        action, decided_by = latest.get(message_id, ("", ""))
        if action == "route" and decided_by in ROUTED_BY:
            setattr(s, ROUTED_BY[decided_by], getattr(s, ROUTED_BY[decided_by]) + 1)
        if status == MessageStatus.HELD:
            s.held += 1
        elif status == MessageStatus.DELIVERED:
            s.delivered += 1
            if message_id in delivered_at:
                bucket.latencies.append((delivered_at[message_id] - received_at).total_seconds())
        elif status == MessageStatus.FAILED:
            s.failed += 1
        for channel in channels.get(message_id, ()):
            s.delivered_by_channel[channel] = s.delivered_by_channel.get(channel, 0) + 1
    return buckets


def _finish(bucket: _Bucket) -> PeriodStats:
    s = bucket.stats
    automated = s.routed_by_rule + s.routed_by_model
    decided = automated + s.routed_by_fallback + s.routed_by_hand + s.held
    s.automation_rate = round(automated / decided, 4) if decided else None
    s.median_delivery_seconds = statistics.median(bucket.latencies) if bucket.latencies else None
    s.delivered_by_channel = dict(sorted(s.delivered_by_channel.items()))
    return s


def ops_reading(store: Store, now: datetime | None = None) -> OpsReading:
    """What /metrics shows from the database: the outbox, the last 24 hours and mailbox quietness."""
    now = now or datetime.now(timezone.utc)
    last_day = summarize(store, None, now - timedelta(days=1), now)
    waiting = [DeliveryStatus.PENDING, DeliveryStatus.SENDING]
    with store.read() as session:
        outbox = session.exec(
            select(Delivery.channel, Delivery.status, func.count()).group_by(Delivery.channel, Delivery.status)
        ).all()
        # Per (channel, status): each minimum is one seek in ix_delivery_channel_status.
        oldest: list[tuple[str, datetime]] = []
        for channel in sorted({c for c, s, _ in outbox if s in waiting}):
            firsts = [
                session.exec(
                    select(func.min(Delivery.created_at)).where(Delivery.channel == channel, Delivery.status == s)
                ).one()
                for s in waiting
            ]
            present = [f for f in firsts if f is not None]
            if present:
                oldest.append((channel, min(present)))
        # Correlated per mailbox: one seek in ix_message_mailbox_received each, not a scan of all mail.
        latest = (
            select(func.max(Message.received_at))
            .where(col(Message.mailbox_id) == col(Mailbox.id))
            .correlate(Mailbox)
            .scalar_subquery()
        )
        newest = session.exec(
            select(Mailbox.provider, Organisation.cvr, Mailbox.name, latest)
            .join(Organisation, col(Organisation.id) == col(Mailbox.organisation_id))
        ).all()
    return OpsReading(
        deliveries=[(c, s, int(n)) for c, s, n in outbox],
        oldest_pending_age=[(c, max(0.0, (now - _aware(at)).total_seconds())) for c, at in oldest],
        figures={name: getattr(last_day, name) for name in FIGURES},
        automation_ratio=last_day.automation_rate,
        delivered_by_channel=last_day.delivered_by_channel,
        delivery_median_seconds=last_day.median_delivery_seconds,
        mailbox_last_message=[(p, f"{cvr}/{name}", _aware(at).timestamp()) for p, cvr, name, at in newest if at],
    )


def _aware(at: datetime) -> datetime:
    """Aggregates (min/max) bypass the column type, so SQLite hands back naive UTC."""
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
