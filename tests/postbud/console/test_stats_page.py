"""The statistics page counts in the database with postbud/stats.py's definitions, per organisation the
viewer may see, and draws them as an SVG with the numbers beside it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from postbud.console.stats_data import figures, span_start
from postbud.stats import recount
from tests.conftest import MakeConfig
from tests.postbud.console.console_testkit import ORG_A, ORG_B, client, console_app, sign_in, user
from tests.postbud.ops_testkit import Out, Spec, add, store_for

NOW = datetime.now(timezone.utc).replace(microsecond=0)
FIELDS = ("collected", "routed_by_rule", "routed_by_model", "routed_by_hand", "routed_by_fallback", "held",
          "delivered", "failed", "automation_rate")


@pytest.mark.parametrize("by", ["day", "month", "year"])
async def test_the_figures_equal_postbud_stats_and_stay_in_the_viewers_organisations(make_config: MakeConfig,
                                                                                    by: str) -> None:
    config = make_config(extra="[console]\nenabled = true")
    store = store_for(config)
    for days, decided_by, status, org in [(0.1, "rule", "delivered", ORG_A), (0.2, "model", "delivered", ORG_A),
                                          (1.5, "hand", "delivered", ORG_A), (1.6, "default", "failed", ORG_A),
                                          (2.5, None, "held", ORG_A), (3.5, "rule", "delivered", ORG_B),
                                          (40, "rule", "delivered", ORG_A)]:
        add(store, Spec(NOW - timedelta(days=days), org=org, decided_by=decided_by, status=status,
                        action="route", outbox=[Out("reception")] if decided_by else []))
    mine = figures(store, (ORG_A,), by, NOW)  # type: ignore[arg-type]
    expected = {p.period: p for p in recount(store, ORG_A, by, NOW, since=span_start(by, NOW))}  # type: ignore[arg-type]
    assert [p.period for p in mine] == sorted(expected)
    assert len(mine) == {"day": 30, "month": 12, "year": 5}[by]  # whole periods, the current one last
    for p in mine:
        assert {f: getattr(p, f) for f in FIELDS} == {f: getattr(expected[p.period], f) for f in FIELDS}, p.period
    assert sum(p.collected for p in mine) == (6 if by != "day" else 5)  # B's letter is not counted

    user(store, "fb", "feedback")
    async with client(console_app(store, config)) as c:
        await sign_in(c, "fb")
        page = (await c.get(f"/console/stats?by={by}&cvr={ORG_B}")).text  # not theirs: all of their own
    assert "<svg" in page and 'class="bar"' in page and "<script" not in page
    for p in mine:  # each period's numbers beside the chart
        assert f"<tr><td>{p.period}</td><td>{p.collected}</td><td>{p.routed_by_rule}</td>" in page
