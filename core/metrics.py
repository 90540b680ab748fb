"""Every Prometheus metric postbud exports, in one place. Labels come from small fixed sets only."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    """One instance per daemon (tests make their own, each with a fresh registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_collected = Counter(
            "postbud_messages_collected_total", "Messages persisted by the collector.", ["provider"], registry=r
        )
        self.messages_quarantined = Counter(
            "postbud_messages_quarantined_total",
            "Messages that could not be parsed or processed, kept as evidence.",
            ["provider", "stage"],
            registry=r,
        )
        self.polls = Counter(
            "postbud_polls_total", "Mailbox polls by outcome.", ["provider", "outcome"], registry=r
        )
        self.poll_seconds = Histogram(
            "postbud_poll_duration_seconds", "Time one mailbox poll took.", ["provider"], registry=r
        )
        self.poll_requests = Histogram(
            "postbud_poll_requests", "Requests one mailbox poll made at its provider (retries included).",
            ["provider"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000), registry=r,
        )
        self.routing_decisions = Counter(
            "postbud_routing_decisions_total",
            "Routing decisions by who decided (rule, model, default, hand) and outcome (route, hold).",
            ["decided_by", "outcome"],
            registry=r,
        )
        self.stage_errors = Counter(
            "postbud_stage_errors_total", "Unexpected errors caught at a stage boundary.", ["stage"], registry=r
        )
        self.rules_reloads = Counter(
            "postbud_rules_reloads_total",
            "Rule set (re)loads: ok, or refused because the changed files do not check.",
            ["outcome"],
            registry=r,
        )
        self.model_trainings = Counter(
            "postbud_model_trainings_total",
            "Scheduled model trainings: trained, or skipped because the confirmed placements did not change.",
            ["outcome"],
            registry=r,
        )
        self.up = Gauge("postbud_up", "1 while the daemon runs.", registry=r)
        # Retention, erasure and the read-only API (issue 8).
        self.purged = Counter(
            "postbud_purged_total",
            "Rows purged by retention, by kind (content, attachment, original, trace_event).",
            ["kind"],
            registry=r,
        )
        self.purge_last_run = Gauge(
            "postbud_purge_last_run_timestamp_seconds",
            "Unix time of the last completed retention purge (alert when older than two days).",
            registry=r,
        )
        self.retention_escalations = Counter(
            "postbud_retention_escalations_total",
            "Held messages escalated because retention is about to purge them.",
            registry=r,
        )
        self.notices = Counter(
            "postbud_notices_total",
            "Notices e-mailed to administrators and processors, by kind (reminder, escalation, final_warning, "
            "notification) and outcome (sent, retry, failed).",
            ["kind", "outcome"],
            registry=r,
        )
        self.held_notices = Counter(
            "postbud_held_notices_total",
            "Held letters named in a schedule notice, by stage (reminder, escalation, final_warning).",
            ["stage"],
            registry=r,
        )
        self.erased_messages = Counter(
            "postbud_erased_messages_total", "Messages erased on a data subject's request.", registry=r
        )
        self.api_requests = Counter(
            "postbud_api_requests_total",
            "Read-only API requests by endpoint (search, show) and outcome.",
            ["endpoint", "outcome"],
            registry=r,
        )

        # Delivery (issue 7): outcomes per channel, time per attempt, the nearest key expiry.
        self.deliveries = Counter(
            "postbud_deliveries_total",
            "Delivery attempts by channel and outcome (delivered, retry, failed, held).",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_attempt_seconds = Histogram(
            "postbud_delivery_attempt_seconds",
            "Time one delivery attempt took (compose, encrypt, send).",
            ["channel"],
            registry=r,
        )
        # A channel paused by a fault of its own (relay down, TLS, credentials): letters wait uncharged.
        self.delivery_channel_paused = Gauge(
            "postbud_delivery_channel_paused",
            "1 while the channel is paused after a fault of the channel (relay down, TLS refused or invalid, "
            "authentication refused); its letters wait without using their attempts.",
            ["channel"],
            registry=r,
        )
        # A receiver refusing us (401/403/404/410): retried with back-off, but a person should look.
        self.delivery_refused = Counter(
            "postbud_delivery_refused_total",
            "Sends the receiver refused while the letter is still retried (webhook_refused: 401/403/404/410).",
            ["channel", "reason"],
            registry=r,
        )
        self.recipient_key_days_left = Gauge(
            "postbud_recipient_key_days_left",
            "Fewest days until a recipient key checked for delivery expires, per channel.",
            ["channel"],
            registry=r,
        )

        self.registry.register(InFlightGauges(IN_FLIGHT))

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)


STAGES_TRACKED = ("poll", "parse")
OVERRUN_REASONS = ("time", "memory", "crash")


class InFlight:
    """What runs right now, by stage, so a stuck poll or parse shows while it is stuck, not after.

    Process-wide (the parse pool's driver threads and the dispatcher both report here); read at scrape time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._running: dict[int, tuple[str, float]] = {}
        self._overruns = dict.fromkeys(OVERRUN_REASONS, 0)

    @contextmanager
    def track(self, stage: str) -> Iterator[None]:
        token = next(self._ids)
        with self._lock:
            self._running[token] = (stage, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(token, None)

    def oldest(self) -> dict[str, float]:
        """Seconds the longest-running operation of each stage has run (0 when none runs)."""
        now = time.monotonic()
        ages = dict.fromkeys(STAGES_TRACKED, 0.0)
        with self._lock:
            for stage, started in self._running.values():
                ages[stage] = max(ages.get(stage, 0.0), now - started)
        return ages

    def count_overrun(self, reason: str) -> None:
        with self._lock:
            self._overruns[reason] = self._overruns.get(reason, 0) + 1

    def overruns(self) -> dict[str, int]:
        with self._lock:
            return dict(self._overruns)


IN_FLIGHT = InFlight()


class InFlightGauges(Collector):
    """The in-flight tracker as metrics: the oldest running poll and parse, and parse budget overruns."""

    def __init__(self, tracker: InFlight) -> None:
        self._tracker = tracker

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        running = GaugeMetricFamily(
            "postbud_stage_oldest_running_seconds",
            "How long the longest-running operation of a stage (poll, parse) has been running; 0 when idle.",
            labels=["stage"],
        )
        for stage, seconds in sorted(self._tracker.oldest().items()):
            running.add_metric([stage], seconds)
        yield running
        overruns = CounterMetricFamily(
            "postbud_parse_budget_exceeded_total",
            "Letters whose parse overran its time or memory budget or crashed its worker (quarantined).",
            labels=["reason"],
        )
        for reason, n in sorted(self._tracker.overruns().items()):
            overruns.add_metric([reason], n)
        yield overruns


@dataclass(frozen=True)
class MailboxReading:
    provider: str
    mailbox: str  # "CVR/name": bounded by the configuration
    status: str
    last_success: float | None
    oldest_unacknowledged_age: float | None
    pause: float = 0.0  # seconds left of a paused mailbox's pause


@dataclass(frozen=True)
class Reading:
    """What the database says at scrape time; every instance reports the same truth."""

    messages_by_status: list[tuple[str, int]]
    mailboxes: list[MailboxReading]
    oldest_held_age: float = 0.0


class DatabaseGauges(Collector):
    """Gauges read from the database at scrape time: message counts and mailbox freshness."""

    def __init__(self, read: Callable[[], Reading]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        reading = self._read()
        messages = GaugeMetricFamily("postbud_messages", "Stored messages by status.", labels=["status"])
        for status, n in reading.messages_by_status:
            messages.add_metric([status], n)
        yield messages
        yield GaugeMetricFamily(
            "postbud_queue_oldest_age_seconds",
            "Age of the oldest message waiting in the manual queue (0 when it is empty).",
            value=reading.oldest_held_age,
        )
        last = GaugeMetricFamily(
            "postbud_mailbox_last_success_timestamp_seconds",
            "Unix time of each mailbox's last successful poll, 0 if it never had one (alert when it grows old).",
            labels=["provider", "mailbox"],
        )
        pause = GaugeMetricFamily(
            "postbud_mailbox_pause_seconds",
            "Seconds left of a mailbox's pause (its circuit opened after repeated failed polls), 0 when not paused.",
            labels=["provider", "mailbox"],
        )
        oldest = GaugeMetricFamily(
            "postbud_mailbox_oldest_unacknowledged_age_seconds",
            "Age of the oldest message collected but not yet acknowledged at the provider.",
            labels=["provider", "mailbox"],
        )
        by_status: dict[tuple[str, str], int] = {}
        for mb in reading.mailboxes:
            # A mailbox that never succeeded (cannot start, refused at once) has a series too: 0.
            last.add_metric([mb.provider, mb.mailbox], mb.last_success or 0.0)
            pause.add_metric([mb.provider, mb.mailbox], mb.pause)
            oldest.add_metric([mb.provider, mb.mailbox], mb.oldest_unacknowledged_age or 0.0)
            by_status[(mb.provider, mb.status)] = by_status.get((mb.provider, mb.status), 0) + 1
        yield last
        yield oldest
        yield pause
        mailboxes = GaugeMetricFamily(
            "postbud_mailboxes",
            "Mailboxes by status (paused: circuit open; needs_reauth: stopped until credentials change; "
            "error: cannot start).",
            labels=["provider", "status"],
        )
        for (provider, status), n in sorted(by_status.items()):
            mailboxes.add_metric([provider, status], n)
        yield mailboxes


@dataclass(frozen=True)
class OpsReading:
    """The outbox and the last 24 hours' figures, read from the database at scrape time."""

    deliveries: list[tuple[str, str, int]]  # channel, status, rows
    oldest_pending_age: list[tuple[str, float]]  # channel, seconds
    figures: dict[str, int]  # the `postbud stats` keys: collected, routed_by_rule, ...
    automation_ratio: float | None
    delivered_by_channel: dict[str, int]
    delivery_median_seconds: float | None
    mailbox_last_message: list[tuple[str, str, float]]  # provider, "CVR/name", unix time


class OpsGauges(Collector):
    """Queue depth and age, the statistics of the last 24 hours, and when each mailbox last had mail."""

    def __init__(self, read: Callable[[], OpsReading]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        reading = self._read()
        outbox = GaugeMetricFamily(
            "postbud_outbox_deliveries", "Outbox rows by channel and status (queue depth).",
            labels=["channel", "status"],
        )
        for channel, status, n in reading.deliveries:
            outbox.add_metric([channel, status], n)
        yield outbox
        age = GaugeMetricFamily(
            "postbud_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row still waiting to be delivered (alert when it grows).",
            labels=["channel"],
        )
        for channel, seconds in reading.oldest_pending_age:
            age.add_metric([channel], seconds)
        yield age
        figures = GaugeMetricFamily(
            "postbud_stats_messages",
            "Messages received in the last 24 hours, by figure (as in `postbud stats`).",
            labels=["figure"],
        )
        for figure, n in reading.figures.items():
            figures.add_metric([figure], n)
        yield figures
        ratio = GaugeMetricFamily(
            "postbud_stats_automation_ratio",
            "Share of the last 24 hours' decided messages routed without a person (rule, model, default).",
        )
        if reading.automation_ratio is not None:
            ratio.add_metric([], reading.automation_ratio)
        yield ratio
        delivered = GaugeMetricFamily(
            "postbud_stats_delivered", "Deliveries made for the last 24 hours' messages, by channel.",
            labels=["channel"],
        )
        for channel, n in sorted(reading.delivered_by_channel.items()):
            delivered.add_metric([channel], n)
        yield delivered
        median = GaugeMetricFamily(
            "postbud_stats_delivery_median_seconds",
            "Median time from collection to delivery of the last 24 hours' delivered messages.",
        )
        if reading.delivery_median_seconds is not None:
            median.add_metric([], reading.delivery_median_seconds)
        yield median
        last = GaugeMetricFamily(
            "postbud_mailbox_last_message_timestamp_seconds",
            "Unix time of the newest message collected from each mailbox (alert when a mailbox goes quiet).",
            labels=["provider", "mailbox"],
        )
        for provider, mailbox, at in reading.mailbox_last_message:
            last.add_metric([provider, mailbox], at)
        yield last


@dataclass(frozen=True)
class AutomationReading:
    """One organisation's automatic routing over the last 30 days, from the database at scrape time."""

    organisation: str  # CVR: bounded by the configuration
    routed_alone: int
    corrected: int
    target_precision: float
    paused: bool


class AutomationGauges(Collector):
    """Realised precision of the model's automatic routing per organisation, from corrections."""

    _FAMILIES = (
        ("postbud_model_routed_alone", "Letters the model routed alone in the last 30 days."),
        ("postbud_model_corrections", "Of those, letters a person corrected (re-routed) afterwards."),
        ("postbud_model_realised_precision", "Realised precision of automatic routing, last 30 days: "
                                             "1 - corrected / routed alone."),
        ("postbud_model_target_precision", "The precision the model promises (configured target)."),
        ("postbud_model_automation_paused", "1 while corrections showed the model below target and paused it."),
    )

    def __init__(self, read: Callable[[], list[AutomationReading]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = [GaugeMetricFamily(name, text, labels=["organisation"]) for name, text in self._FAMILIES]
        for r in self._read():
            realised = 1.0 - r.corrected / r.routed_alone if r.routed_alone else None
            values = (r.routed_alone, r.corrected, realised, r.target_precision, float(r.paused))
            for family, value in zip(families, values, strict=True):
                if value is not None:
                    family.add_metric([r.organisation], value)
        yield from families
