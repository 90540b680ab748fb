"""Issue 17: `run --once` runs its stages side by side, and letters that arrive meanwhile are not left behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from delivery_testkit import RecordingHandler
from sqlmodel import col, select
from worker_testkit import delivery_toml, drop, letter, recipients_toml, vouch

from core.configfile import load_config
from core.storage.models import Mailbox, Message, TraceEvent
from postbud.daemon import Daemon
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

FIRST, LATER = 7, 5  # more than one poll (3 files) and one outbox batch (2 rows) each


@dataclass
class ArrivalsOnFirstDelivery(RecordingHandler):
    """The relay; when it accepts its first letter, more letters land in the second mailbox (before its
    reply, so they are there before that delivery is even recorded)."""

    scanner: Path | None = None
    dropped: bool = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if not self.dropped and self.scanner is not None:
            self.dropped = True
            self.scanner.mkdir(exist_ok=True)
            for n in range(FIRST, FIRST + LATER):
                (self.scanner / f"letter-{n}.eml").write_bytes(letter(n))
        return reply


@pytest.fixture
async def smtp(smtp_server: ServeFactory, tmp_path: Path) -> RunningSmtp:
    return await smtp_server(handler=ArrivalsOnFirstDelivery(scanner=tmp_path / "scanner"))


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    recipients = recipients_toml(tmp_path, smime_recipient)
    config = make_config(extra=delivery_toml(smtp, recipients, extra="batch_size = 2"))
    assert config.path is not None
    # The drop folder's table is the file's last: a poll takes at most 3 files; then a second mailbox.
    config.path.write_text(config.path.read_text() + "  max_files_per_poll = 3\n"
                           '  [[organisations.mailboxes]]\n  name = "scanner"\n  type = "folder"\n'
                           '  path = "scanner"\n  settle_seconds = 0\n  max_files_per_poll = 3\n')
    runtime = Runtime.create(load_config(config.path))
    yield runtime
    await runtime.aclose()


async def test_letters_arriving_on_a_second_mailbox_mid_run_are_delivered_and_the_run_ends(
        rt: Runtime, smtp: RunningSmtp, tmp_path: Path) -> None:
    # GIVEN an approved recipient, letters in the drop folder, and more that reach the scanner's folder
    # only once the first letter is at the relay
    vouch(rt)
    for n in range(FIRST):
        drop(rt, f"letter-{n}.eml", letter(n))
    # WHEN run --once runs (bounded: it must end by itself)
    await asyncio.wait_for(Daemon(rt).run_once(), timeout=90)
    # THEN every letter, the late ones too, was collected and delivered, and both folders are empty
    with rt.store.read() as session:
        statuses = [m.status for m in session.exec(select(Message))]
        scanner = session.exec(select(Mailbox.id).where(Mailbox.name == "scanner")).one()
        late = session.exec(select(Message.id).where(Message.mailbox_id == scanner)).all()
        first_delivered = session.exec(select(TraceEvent.at).where(TraceEvent.kind == "delivered")
                                       .order_by(col(TraceEvent.at))).first()
        late_collected = session.exec(select(TraceEvent.at).where(TraceEvent.kind == "collected",
                                                                  col(TraceEvent.message_id).in_(late))).all()
    assert statuses == ["delivered"] * (FIRST + LATER)
    assert len(late) == LATER and len(smtp.handler.messages) == FIRST + LATER
    assert not list((tmp_path / "drop").iterdir()) and not list((tmp_path / "scanner").iterdir())
    # AND the late letters really came after delivery had begun
    assert first_delivered is not None and min(late_collected) >= first_delivered
