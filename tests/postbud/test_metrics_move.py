"""The catalogued metrics that no other test watched move: collection, the queue's age, stage errors,
trainings and `postbud_up` (tests/core/test_metrics_catalogue.py checks every metric has such a test)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from core.configfile import load_config
from core.metrics import Metrics
from postbud.daemon import Daemon
from postbud.retention import purge
from postbud.runtime import Runtime
from tests.collector.test_folder_collection import EML, drop
from tests.conftest import MakeConfig

MAILBOX = {"provider": "folder", "mailbox": "12345678/drop"}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_collection_and_queue_metrics_move(make_config: MakeConfig) -> None:
    # GIVEN a drop folder that keeps files until delivery, holding a good letter and a broken MeMo
    path = make_config(extra_org="retention_days = 30").path
    assert path is not None
    path.write_text(path.read_text().replace("settle_seconds = 0", 'settle_seconds = 0\nacknowledge = "after_delivery"'))
    config = load_config(path)
    drop(config.base_dir, "a.eml", EML)
    drop(config.base_dir, "b.xml", b"<memo>not a MeMo")
    runtime = await asyncio.to_thread(Runtime.create, config, metrics=Metrics())
    m = runtime.metrics
    try:
        # WHEN the mailbox is polled and the letter routed (no default route: it is held)
        await runtime.dispatcher.run_all_once()
        await Daemon(runtime).route()

        # THEN the collector's counters and the database gauges moved
        assert value(m, "postbud_polls_total", provider="folder", outcome="ok") == 1
        assert value(m, "postbud_poll_duration_seconds_count", provider="folder") == 1
        assert value(m, "postbud_messages_quarantined_total", provider="folder", stage="collect") == 1
        assert (value(m, "postbud_mailbox_last_success_timestamp_seconds", **MAILBOX) or 0) > 0
        assert value(m, "postbud_mailboxes", provider="folder", status="active") == 1
        assert value(m, "postbud_mailbox_oldest_unacknowledged_age_seconds", **MAILBOX) is not None
        assert value(m, "postbud_messages", status="held") == 1
        assert (value(m, "postbud_queue_oldest_age_seconds") or 0) > 0
        # AND when retention purges the held letter, the queue's age forgets it
        purge(runtime.store, config, datetime.now(timezone.utc) + timedelta(days=31))
        assert value(m, "postbud_queue_oldest_age_seconds") == 0
        assert value(m, "postbud_messages", status="expired") == 1
    finally:
        await runtime.aclose()


async def test_stage_errors_trainings_and_up_move(make_config: MakeConfig) -> None:
    config = make_config()
    runtime = await asyncio.to_thread(Runtime.create, config, metrics=Metrics())
    m = runtime.metrics
    daemon = Daemon(runtime)
    try:
        async def broken() -> None:
            raise RuntimeError("boom")

        job: Callable[[], Awaitable[None]] = broken
        await daemon._supervised("route", job)
        assert value(m, "postbud_stage_errors_total", stage="route") == 1

        await daemon.train()  # the first training, then none while the placements stay the same
        await daemon.train()
        assert value(m, "postbud_model_trainings_total", outcome="trained") == 1
        assert value(m, "postbud_model_trainings_total", outcome="skipped") == 1

        task = asyncio.create_task(daemon.run())
        for _ in range(100):
            await asyncio.sleep(0.05)
            if value(m, "postbud_up") == 1:
                break
        assert value(m, "postbud_up") == 1
        daemon.stop()
        await asyncio.wait_for(task, 10)
        assert value(m, "postbud_up") == 0
    finally:
        await runtime.aclose()
