"""Every Prometheus metric postbud exports, in one place. Labels come from small fixed sets only."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
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
        self.routing_decisions = Counter(
            "postbud_routing_decisions_total",
            "Routing decisions by who decided (rule, model, default, hand) and outcome (route, hold).",
            ["decided_by", "outcome"],
            registry=r,
        )
        self.stage_errors = Counter(
            "postbud_stage_errors_total", "Unexpected errors caught at a stage boundary.", ["stage"], registry=r
        )
        self.mailbox_last_success = Gauge(
            "postbud_mailbox_last_success_timestamp_seconds",
            "Unix time of each mailbox's last successful poll.",
            ["provider", "mailbox"],
            registry=r,
        )
        self.mailboxes_needing_reauth = Gauge(
            "postbud_mailboxes_needing_reauth", "Mailboxes stopped until their credentials change.",
            ["provider"], registry=r,
        )
        self.up = Gauge("postbud_up", "1 while the daemon runs.", registry=r)

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)


class StatusGauge(Collector):
    """Messages per status, read from the database at scrape time (the database is the truth)."""

    def __init__(self, count: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self._count = count

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("postbud_messages", "Stored messages by status.", labels=["status"])
        for status, n in self._count():
            family.add_metric([status], n)
        yield family
