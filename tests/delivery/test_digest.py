"""The daily digest: one mail a day per digest recipient at the configured local time, listing how many
letters and from whom, when (no content, no CPR), sent once across restarts and instances; nothing on
an empty day."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import select
from worker_testkit import ORG, collect_and_route, deliver, delivery_toml, recipients_toml, state, vouch

from core.storage.models import Notice, TraceEvent, utcnow
from delivery import digest
from delivery.notices import send_notices
from delivery.preferences import open_settings_token, preferences
from delivery.recipients import RecipientsFile
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, SmimeRecipient

    from tests.conftest import MakeConfig

BOSS = """
[org.{org}.recipients.boss]
name = "Direktøren"
email = "boss@example.com"
notify = "digest"
notification_address = "boss.phone@example.com"
smime_cert = "{cert}"
"""
NOTICES = '\n[notices]\ndigest_time = "07:30"\ntimezone = "Europe/Copenhagen"\nconsole_url = "https://console.test"\n'


@pytest.fixture
def config_for(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient, tmp_path: Path):  # type: ignore[no-untyped-def]
    recipients = recipients_toml(tmp_path, smime_recipient, extra=BOSS.format(org=ORG, cert=smime_recipient.cert_path))
    return lambda: make_config(extra_org='default_route = ["boss"]', extra=delivery_toml(smtp, recipients) + NOTICES)


@pytest.fixture
async def rt(config_for) -> AsyncIterator[Runtime]:  # type: ignore[no-untyped-def]
    runtime = Runtime.create(config_for())
    yield runtime
    await runtime.aclose()


def day_holding(rt: Runtime, moment: dt.datetime) -> dt.date:
    """The day whose digest lists a letter handed over at `moment`."""
    day = moment.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    while digest.digest_moment(rt.config, day) <= moment:
        day += dt.timedelta(days=1)
    return day


def notices(rt: Runtime) -> list[Notice]:
    with rt.store.read() as session:
        return list(session.exec(select(Notice).where(Notice.kind == "digest")))


def mails_to(smtp: RunningSmtp, address: str) -> list[email.message.Message]:
    return [email.message_from_bytes(content, policy=email.policy.default) for content, _ in smtp.handler.messages
            if f"To: {address}".encode() in content]


async def test_the_digest_lists_senders_and_times_without_content_and_goes_once_across_a_restart(
        rt: Runtime, config_for, smtp: RunningSmtp) -> None:  # type: ignore[no-untyped-def]
    # GIVEN two letters for a digest recipient, handed over (nothing mailed at delivery)
    ids = await collect_and_route(rt, 1, 2)
    vouch(rt, "boss")
    await deliver(rt)
    handed = utcnow()
    assert smtp.handler.messages == []
    sent = [e.detail for mid in ids for e in state(rt, mid).events if e.kind == "delivery_sent"]
    assert [(d["mode"], d["content_sent"]) for d in sent] == [("digest", False)] * 2
    day = day_holding(rt, handed)
    due = digest.digest_moment(rt.config, day)
    # the digest time is 07:30 local (Copenhagen is UTC+1 in December)
    assert (due.hour, due.minute) == (6, 30)

    # WHEN the clock has not reached the digest time (plus its settling minute), nothing is queued
    assert digest.queue_digests(rt.store, rt.config, rt.recipients, now=due) == 0
    # WHEN it has: one digest, to the notification address, keyed by recipient and day
    later = due + dt.timedelta(minutes=2)
    assert digest.queue_digests(rt.store, rt.config, rt.recipients, now=later) == 1
    (queued,) = notices(rt)
    assert queued.key == f"digest:{ORG}:boss:{day.isoformat()}" and queued.recipients == ["boss.phone@example.com"]
    run = await send_notices(rt.store, rt.config, owner="i1", clock=lambda: later)
    assert run.sent == 1

    # THEN the mail counts the letters and names each sender with its received time, and nothing else
    (mail,) = mails_to(smtp, "boss.phone@example.com")
    body = mail.get_content()
    assert mail["Subject"] == "[postbud] Dagens post: 2 nye breve til Test ApS"
    assert body.count("Skattestyrelsen, modtaget ") == 2
    assert re.search(r"modtaget \d\d\.\d\d\.\d{4} kl\. \d\d:\d\d", body)
    assert "Momsangivelse" not in body and "brev-1.pdf" not in body and "vedhæftede" not in body
    assert "https://console.test/console/" in body
    # AND it carries the signed link to the recipient's settings
    link = re.search(r"https://postbud\.test\.example/recipients/notifications/(\S+)", body)
    assert link is not None
    assert open_settings_token(rt.store.vault, link.group(1), now=later) == (ORG, "boss")
    # AND the trace records it: sent (with its key), and on each letter that it was named
    with rt.store.read() as session:
        proof = session.exec(select(TraceEvent).where(TraceEvent.kind == "notification_sent")).one()
    assert proof.detail["kind"] == "digest" and proof.detail["key"] == queued.key
    assert all("digest_queued" in state(rt, mid).kinds() for mid in ids)

    # WHEN the daemon restarts (a new runtime on the same database) and looks again, or a second
    # instance decides the same digest at the same moment
    await rt.aclose()
    again = Runtime.create(config_for())
    try:
        assert digest.queue_digests(again.store, again.config, again.recipients, now=later) == 0
        assert isinstance(again.recipients, RecipientsFile)
        boss = again.recipients.get(ORG, "boss")
        letters = [digest.Letter(mid, "Skattestyrelsen", handed, handed) for mid in ids]
        assert digest._queue_one(again.store, again.config, ORG, boss, day, due, letters) == 0
        assert (await send_notices(again.store, again.config, owner="i2", clock=lambda: later)).sent == 0
        # THEN it was mailed once
        assert len(mails_to(smtp, "boss.phone@example.com")) == 1
        # AND the next day, without letters, sends nothing
        next_day = digest.digest_moment(again.config, day + dt.timedelta(days=1)) + dt.timedelta(minutes=2)
        assert digest.queue_digests(again.store, again.config, again.recipients, now=next_day) == 0
        assert len(notices(again)) == 1
    finally:
        await again.aclose()


async def test_no_digest_on_a_day_without_letters_nor_for_a_recipient_who_switched_off(rt: Runtime) -> None:
    from delivery.preferences import set_enabled

    now = utcnow()
    for back in range(3):
        assert digest.queue_digests(rt.store, rt.config, rt.recipients, now=now + dt.timedelta(days=back)) == 0
    # a letter handed to the digest, then the recipient switches notifications off before it is due
    await collect_and_route(rt, 1)
    vouch(rt, "boss")
    await deliver(rt)
    set_enabled(rt.store, ORG, "boss", False)
    due = digest.digest_moment(rt.config, day_holding(rt, utcnow())) + dt.timedelta(minutes=2)
    assert digest.queue_digests(rt.store, rt.config, rt.recipients, now=due) == 0
    assert notices(rt) == []
    assert isinstance(rt.recipients, RecipientsFile)
    with rt.store.read() as session:
        assert preferences(session, ORG, rt.recipients.get(ORG, "boss")).enabled is False


def test_digest_days_follow_local_time_across_daylight_saving(make_config: MakeConfig) -> None:
    config = make_config(extra=NOTICES)
    summer = digest.digest_moment(config, dt.date(2026, 7, 1))
    winter = digest.digest_moment(config, dt.date(2026, 12, 1))
    assert (summer.hour, winter.hour) == (5, 6)
    # a week of missed days is caught up, oldest first; a day whose time has not come is not due
    now = dt.datetime(2026, 12, 10, 6, 0, tzinfo=dt.UTC)
    days = digest.due_days(config, now)
    assert days[0] == dt.date(2026, 12, 4) and days[-1] == dt.date(2026, 12, 9)


def test_a_sender_named_by_cpr_number_is_masked(make_config: MakeConfig, smime_recipient: SmimeRecipient,
                                                tmp_path: Path) -> None:
    from delivery.recipients import load_recipients

    config = make_config(extra=NOTICES)
    boss = load_recipients(recipients_toml(tmp_path, smime_recipient, extra=BOSS.format(
        org=ORG, cert=smime_recipient.cert_path))).get(ORG, "boss")
    at = dt.datetime(2026, 12, 7, 9, 15, tzinfo=dt.UTC)
    subject, text = digest.compose_text(config, ORG, boss, at, [
        digest.Letter("m1", "Jens Hansen 010190-1234\r\nBcc: x@evil", at, at),
        digest.Letter("m2", "Skattestyrelsen", at + dt.timedelta(hours=1), at)])
    assert subject == "Dagens post: 2 nye breve til Test ApS"
    assert "010190-1234" not in text and "Jens Hansen [cpr] Bcc: x@evil, modtaget 07.12.2026 kl. 10:15" in text
    assert "Skattestyrelsen, modtaget 07.12.2026 kl. 11:15" in text
