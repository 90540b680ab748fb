"""Held messages past the organisation's limit are escalated to its administrators, once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlmodel import select

from core.notify import TraceNotifier
from postbud.runtime import Runtime
from postbud.service import serve
from core.storage.models import TraceEvent
from router.escalation import escalate_held
from tests.collector.test_folder_collection import EML, drop
from tests.conftest import MakeConfig


def test_held_too_long_is_escalated_once(make_config: MakeConfig) -> None:
    config = make_config(extra_org="administrators = [\"it@test.dk\"]\nescalate_held_after_hours = 2")
    drop(config.base_dir, "a.eml", EML)
    asyncio.run(serve(config, once=True))
    runtime = Runtime.create(config)
    try:
        notifier = TraceNotifier(runtime.store, {"12345678": ("it@test.dk",)})
        now = datetime.now(timezone.utc)
        assert escalate_held(runtime.store, config, notifier, now=now + timedelta(hours=1)) == 0
        assert escalate_held(runtime.store, config, notifier, now=now + timedelta(hours=3)) == 1
        assert escalate_held(runtime.store, config, notifier, now=now + timedelta(hours=4)) == 0
        with runtime.store.read() as session:
            kinds = [e.kind for e in session.exec(select(TraceEvent))]
        assert kinds.count("escalated") == 1 and kinds.count("notification") == 1
    finally:
        asyncio.run(runtime.aclose())
