"""A held letter's whole life on a clock the test moves: reminder, escalation, final warning and purge,
each notice found exactly once in the sandbox mail server (real SMTP over TLS)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import Message as EmailMessage
from pathlib import Path

import pytest
from sqlmodel import col, select

from core.config import Config
from core.storage.models import Message, TraceEvent
from delivery.notices import send_notices
from postbud.daemon import Daemon
from postbud.retention import purge
from postbud.runtime import Runtime
from postbud.trace import metrics_reading
from router.queue import held
from sandbox.mailserver import SandboxMailServer
from tests.collector.test_folder_collection import EML, drop
from tests.conftest import MakeConfig


def life_config(make_config: MakeConfig, server: SandboxMailServer) -> Config:
    return make_config(
        extra_org='administrators = ["admin@test.dk"]\nprocessors = ["post@test.dk"]\n'
                  "retention_days = 30\nheld_reminders_hours = [24]\ndecision_deadline_days = 7\n"
                  "final_warning_days = 5\nnotices_show_senders = true",
        extra=f'[delivery]\nsmtp_port = {server.port}\nsmtp_ca_file = "{server.ca_file}"\n'
              'from_address = "postbud@test.dk"\nchannels = ["email"]',
    )


def mails(server: SandboxMailServer) -> list[EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(server.mail_dir.glob("*.eml"))]


def body(mail: EmailMessage) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode("utf-8")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start

    def at(self, offset: timedelta) -> Callable[[], datetime]:
        self.now = self.start + offset
        return lambda: self.now


async def collect_one_held_letter(config: Config) -> tuple[Runtime, str]:
    drop(config.base_dir, "a.eml", EML)
    runtime = await asyncio.to_thread(Runtime.create, config)
    await runtime.dispatcher.run_all_once()
    await Daemon(runtime).route()
    (letter,) = held(runtime.store)
    return runtime, letter.id


async def test_a_held_letter_is_told_each_stage_once_then_purged(
    make_config: MakeConfig, mail_server: SandboxMailServer
) -> None:
    config = life_config(make_config, mail_server)
    runtime, letter = await collect_one_held_letter(config)
    with runtime.store.read() as session:
        arrived = session.exec(select(Message.received_at).where(Message.id == letter)).one()
    clock = Clock(arrived)
    daemon = Daemon(runtime, clock=lambda: clock.now)
    subjects_seen: list[list[str]] = []
    try:
        # WHEN the daemon's hourly housekeeping runs across the letter's 30 days, more often around
        # each stage (every run tells only what is new)
        hours = sorted({1, 23, 25, 26, 47, 24 * 6, 24 * 7 - 1, 24 * 7 + 1, 24 * 7 + 2, 24 * 10,
                        24 * 25 - 1, 24 * 25 + 1, 24 * 25 + 5, 24 * 29, 24 * 30 + 1, 24 * 31 + 2})
        for h in hours:
            clock.at(timedelta(hours=h))
            await daemon.housekeeping()
            subjects_seen.append([m["Subject"] for m in mails(mail_server)])
    finally:
        await runtime.aclose()

    # THEN the sandbox mail server holds exactly three notices, one per stage, each in its turn
    received = mails(mail_server)
    assert [m["Subject"].split(":")[0] for m in received] == [
        "[postbud] Reminder", "[postbud] Escalation", "[postbud] Final warning"]
    when = {h: len(seen) for h, seen in zip(hours, subjects_seen)}
    assert (when[23], when[25], when[24 * 7 - 1], when[24 * 7 + 1], when[24 * 25 - 1], when[24 * 25 + 1]) == \
        (0, 1, 1, 2, 2, 3)
    reminder, escalation, warning = received
    assert reminder["To"] == "post@test.dk"  # reminders go to the processors
    assert escalation["To"] == warning["To"] == "post@test.dk, admin@test.dk"
    for mail in received:
        text = body(mail)
        assert letter in text and "Skattestyrelsen" in text  # id, and the sender as the organisation allows
        assert "Momsangivelse" not in text and "Momsangivelse" not in mail["Subject"]  # never content
        assert "/queue?org=12345678" in text
    assert "1 held letter" in reminder["Subject"]

    # AND the letter's trace tells its life in order, and it is gone from the queue and its age metric
    with runtime.store.read() as session:
        kinds = [e.kind for e in session.exec(
            select(TraceEvent).where(TraceEvent.message_id == letter).order_by(col(TraceEvent.at), col(TraceEvent.id)))]
        status = session.exec(select(Message.status).where(Message.id == letter)).one()
    life = [k for k in kinds if k in ("reminded", "escalated", "purge_warned", "purged")]
    # (retention deletes the events older than its period, so the first ones may be gone by now)
    assert life in (["reminded", "escalated", "purge_warned", "purged"], ["escalated", "purge_warned", "purged"],
                    ["purge_warned", "purged"])
    assert status == "expired"
    assert held(runtime.store) == [] and metrics_reading(runtime.store).oldest_held_age == 0.0
    assert runtime.metrics.registry.get_sample_value("postbud_retention_escalations_total") == 1
    for stage in ("reminder", "escalation", "final_warning"):
        assert runtime.metrics.registry.get_sample_value("postbud_held_notices_total", {"stage": stage}) == 1
        assert runtime.metrics.registry.get_sample_value(
            "postbud_notices_total", {"kind": stage, "outcome": "sent"}) == 1


async def test_a_purge_by_hand_sends_the_final_warning_and_the_daemon_does_not_repeat_it(
    make_config: MakeConfig, mail_server: SandboxMailServer
) -> None:
    config = life_config(make_config, mail_server)
    runtime, letter = await collect_one_held_letter(config)
    with runtime.store.read() as session:
        arrived = session.exec(select(Message.received_at).where(Message.id == letter)).one()
    try:
        # GIVEN nobody ran the daemon for 26 days; WHEN an operator runs `postbud purge` (its steps)
        now = arrived + timedelta(days=26)
        purge(runtime.store, config, now)
        sent = await send_notices(runtime.store, config, owner="purge-cli", clock=lambda: now)
        # THEN the final warning went out at once, without the reminder and escalation it supersedes
        assert sent.sent == 1
        (warning,) = mails(mail_server)
        assert warning["Subject"].startswith("[postbud] Final warning") and letter in body(warning)
        # AND the daemon, running next, finds it told: nothing is sent twice
        daemon = Daemon(runtime, clock=lambda: now + timedelta(hours=1))
        await daemon.housekeeping()
        assert len(mails(mail_server)) == 1
    finally:
        await runtime.aclose()


async def test_postbud_purge_by_hand_sends_the_final_warning_itself(
    make_config: MakeConfig, mail_server: SandboxMailServer
) -> None:
    from typer.testing import CliRunner

    from postbud.cli.app import app
    from postbud.runtime import open_store
    from tests.postbud.ops_testkit import Spec, add

    # GIVEN a held letter 26 days old in an organisation keeping 30 days, warned 5 days ahead
    config = life_config(make_config, mail_server)
    assert config.path is not None
    letter = add(open_store(config), Spec(datetime.now(timezone.utc) - timedelta(days=26), org="12345678",
                                          status="held"))
    runner = CliRunner()
    # WHEN an operator runs `postbud purge` (in a thread: the mail server serves on this loop)
    first = await asyncio.to_thread(runner.invoke, app, ["-c", str(config.path), "purge"])
    again = await asyncio.to_thread(runner.invoke, app, ["-c", str(config.path), "purge"])
    # THEN the final warning went out from the command itself, once
    assert first.exit_code == 0, first.output
    assert "held letters told: final warning 1" in first.output
    assert "notices: 1 sent, 0 left for the daemon to send" in first.output
    assert again.exit_code == 0 and "notices:" not in again.output
    (warning,) = mails(mail_server)
    assert warning["Subject"].startswith("[postbud] Final warning") and letter in body(warning)
