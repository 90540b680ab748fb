"""Statistics on a known data set: per period figures, the JSON contract, and the same figures on /metrics."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from typer.testing import CliRunner

from postbud.cli.ops import ops_app
from core.config import Config
from core.metrics import Metrics, OpsGauges
from postbud.stats import ops_reading, stats
from core.storage.db import Store
from core.storage.models import RoutingDecision
from tests.conftest import MakeConfig
from tests.postbud.ops_testkit import NOW, ORG_A, ORG_B, Out, Spec, add, store_for

KEYS = {"period", "collected", "routed_by_rule", "routed_by_model", "routed_by_hand", "held", "delivered",
        "failed", "automation_rate", "delivered_by_channel", "median_delivery_seconds", "routed_by_fallback"}
DAY1 = NOW.replace(hour=0) - timedelta(days=2) + timedelta(hours=9)  # 2026-05-30 09:00
TODAY = NOW - timedelta(hours=2)  # 2026-06-01 10:00


@pytest.fixture
def known(make_config: MakeConfig) -> tuple[Config, Store]:
    """Five messages on 30 May, none on 31 May, two on 1 June for A; one on 30 May for B."""
    config = make_config()
    store = store_for(config)
    add(store, Spec(DAY1, decided_by="rule", status="delivered", outbox=[Out("a@a.dk", after_seconds=60)]))
    add(store, Spec(DAY1, decided_by="model", status="delivered",
                    outbox=[Out("b@a.dk", after_seconds=120), Out("hook", channel="webhook", after_seconds=180)]))
    add(store, Spec(DAY1, decided_by="hand", status="failed", outbox=[Out("c@a.dk", status="failed", after_seconds=None)]))
    add(store, Spec(DAY1, decided_by="rule", action="hold", status="held"))
    add(store, Spec(DAY1, status="quarantined", quarantined=True))
    add(store, Spec(TODAY, decided_by="default", status="delivered", outbox=[Out("d@a.dk", after_seconds=300)]))
    placed = add(store, Spec(TODAY, decided_by="rule", action="hold", status="routed",
                             outbox=[Out("e@a.dk", status="pending", after_seconds=None)]))
    with store.transaction() as session:  # held first, then placed by a person
        session.add(RoutingDecision(message_id=placed, created_at=TODAY + timedelta(hours=1), action="route",
                                    decided_by="hand", recipients=["e@a.dk"]))
    add(store, Spec(DAY1, org=ORG_B, decided_by="rule", status="delivered", outbox=[Out("x@b.dk")]))
    return config, store


def test_daily_figures_for_one_organisation(known: tuple[Config, Store]) -> None:
    _, store = known
    periods = [p.to_json() for p in stats(store, ORG_A, "day", NOW)]
    assert [p["period"] for p in periods] == ["2026-05-30", "2026-05-31", "2026-06-01"]
    assert all(set(p) == KEYS for p in periods)
    assert periods[0] == {
        "period": "2026-05-30", "collected": 5, "routed_by_rule": 1, "routed_by_model": 1, "routed_by_hand": 1,
        "held": 1, "delivered": 2, "failed": 1, "automation_rate": 0.5,
        "delivered_by_channel": {"email": 2, "webhook": 1}, "median_delivery_seconds": 120.0,
        "routed_by_fallback": 0,
    }
    assert periods[1]["collected"] == 0 and periods[1]["automation_rate"] is None
    assert periods[2] == {
        "period": "2026-06-01", "collected": 2, "routed_by_rule": 0, "routed_by_model": 0, "routed_by_hand": 1,
        "held": 0, "delivered": 1, "failed": 0, "automation_rate": 0.0,
        "delivered_by_channel": {"email": 1}, "median_delivery_seconds": 300.0, "routed_by_fallback": 1,
    }


def test_the_organisations_fallback_route_is_not_counted_as_automation(make_config: MakeConfig) -> None:
    """GIVEN 14 letters, 12 routed by rules and 2 by the organisation's default route
    WHEN the stats are read THEN the fallbacks are counted apart and the automation rate is 12/14."""
    store = store_for(make_config())
    for _ in range(12):
        add(store, Spec(TODAY, decided_by="rule", status="delivered", outbox=[Out("a@a.dk")]))
    for _ in range(2):
        add(store, Spec(TODAY, decided_by="default", status="delivered", outbox=[Out("d@a.dk")]))
    (today,) = stats(store, ORG_A, "day", NOW, since=TODAY)
    assert (today.routed_by_rule, today.routed_by_fallback, today.routed_by_model) == (12, 2, 0)
    assert today.automation_rate == round(12 / 14, 4)


def test_monthly_and_yearly_figures_for_every_organisation(known: tuple[Config, Store]) -> None:
    _, store = known
    may, june = stats(store, None, "month", NOW)
    assert (may.period, may.collected, may.routed_by_rule, may.delivered) == ("2026-05", 6, 2, 3)
    assert may.automation_rate == round(3 / 5, 4)
    assert (june.period, june.collected) == ("2026-06", 2)
    (year,) = stats(store, None, "year", NOW)
    assert (year.period, year.collected, year.failed, year.held) == ("2026", 8, 1, 1)
    assert stats(store, "99999999", "day", NOW) == []
    with pytest.raises(ValueError):
        stats(store, None, "week", NOW)  # type: ignore[arg-type]


def test_the_same_figures_are_prometheus_gauges(known: tuple[Config, Store]) -> None:
    _, store = known
    metrics = Metrics()
    metrics.add_collector(OpsGauges(lambda: ops_reading(store, NOW)))
    value = metrics.registry.get_sample_value
    assert value("postbud_stats_messages", {"figure": "collected"}) == 2
    assert value("postbud_stats_messages", {"figure": "routed_by_hand"}) == 1
    assert value("postbud_stats_automation_ratio") == 0.0
    assert value("postbud_stats_messages", {"figure": "routed_by_fallback"}) == 1
    assert value("postbud_stats_delivered", {"channel": "email"}) == 1
    assert value("postbud_stats_delivery_median_seconds") == 300
    assert value("postbud_outbox_deliveries", {"channel": "email", "status": "pending"}) == 1
    assert value("postbud_outbox_deliveries", {"channel": "webhook", "status": "delivered"}) == 1
    assert value("postbud_outbox_oldest_pending_age_seconds", {"channel": "email"}) == 7199
    last = value("postbud_mailbox_last_message_timestamp_seconds", {"provider": "folder", "mailbox": f"{ORG_A}/inbox"})
    assert last == TODAY.timestamp()
    assert "postbud_stats_messages" in generate_latest(metrics.registry).decode()


def test_stats_command_prints_json_periods(known: tuple[Config, Store]) -> None:
    config, _ = known
    result = CliRunner().invoke(ops_app, ["stats", "-c", str(config.path), "--org", ORG_A, "--by", "month", "--json"])
    assert result.exit_code == 0, result.output
    periods = json.loads(result.stdout)
    assert periods[0]["period"] == "2026-05" and periods[0]["collected"] == 5
    assert all(set(p) == KEYS for p in periods)
    table = CliRunner().invoke(ops_app, ["stats", "-c", str(config.path), "--by", "year"])
    assert table.exit_code == 0 and "2026" in table.stdout
    bad = CliRunner().invoke(ops_app, ["stats", "-c", str(config.path), "--by", "week"])
    assert bad.exit_code == 2
