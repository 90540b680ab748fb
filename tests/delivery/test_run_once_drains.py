"""Issue 17: `run --once` runs every stage until no work is left, whatever the volume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import select
from worker_testkit import delivery_toml, drop, letter, recipients_toml, vouch

from core.configfile import load_config
from core.storage import daily_counts
from core.storage.daily_counts import DailyCount
from core.storage.models import Message
from postbud.daemon import Daemon
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

LETTERS = 7  # more than one poll (3 files), one outbox batch (2 rows) and one routing pass


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    recipients = recipients_toml(tmp_path, smime_recipient)
    config = make_config(extra=delivery_toml(smtp, recipients, extra="batch_size = 2"))
    assert config.path is not None
    # The drop folder's table is the file's last: a poll takes at most 3 files.
    config.path.write_text(config.path.read_text() + "  max_files_per_poll = 3\n")
    runtime = Runtime.create(load_config(config.path))
    yield runtime
    await runtime.aclose()


async def test_run_once_delivers_everything_dropped_beyond_one_batch_of_each_stage(
        rt: Runtime, smtp: RunningSmtp) -> None:
    # GIVEN an approved recipient and more letters than any stage takes in one batch
    vouch(rt)
    for n in range(LETTERS):
        drop(rt, f"letter-{n}.eml", letter(n))
    # WHEN run --once returns
    await Daemon(rt).run_once()
    # THEN every letter was collected and delivered, none left routed or collected
    with rt.store.read() as session:
        statuses = [m.status for m in session.exec(select(Message))]
    assert statuses == ["delivered"] * LETTERS
    assert len(smtp.handler.messages) == LETTERS
    assert not list((rt.config.base_dir / "drop").iterdir())
    # AND the statistics' roll-up is settled: one row per day and measure, counting every letter
    with rt.store.read() as session:
        assert not session.exec(select(DailyCount).where(DailyCount.settled == False)).all()  # noqa: E712
    assert sum(n for (_, measure), n in daily_counts.counts(rt.store, None, None, date.max).items()
               if measure == "status:delivered") == LETTERS
