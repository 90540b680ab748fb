"""Notices are e-mailed (not only recorded): through the relay over TLS, once, retried, with the trace as proof."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone
from email.message import Message as EmailMessage
from pathlib import Path

import pytest
from sqlmodel import select

from core.config import Config
from core.metrics import Metrics
from core.notify import TraceNotifier
from core.storage.db import Store
from core.storage.models import Notice, TraceEvent
from delivery.notices import claim, send_notices
from postbud.runtime import open_store
from sandbox.mailserver import MaildirHandler, SandboxMailServer, serve_smtp
from tests.conftest import MakeConfig

ORG = "12345678"


def notice_config(make_config: MakeConfig, port: int, ca_file: Path) -> Config:
    return make_config(
        extra_org='administrators = ["admin@test.dk", "it@test.dk"]',
        extra=f'[delivery]\nsmtp_port = {port}\nsmtp_ca_file = "{ca_file}"\nfrom_address = "postbud@test.dk"\n'
              '[notices]\nconsole_url = "https://postbud.test.dk"\nretry_base_seconds = 60',
    )


def received(folder: Path) -> list[EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(folder.glob("*.eml"))]


def events(store: Store, kind: str) -> list[TraceEvent]:
    with store.read() as session:
        return list(session.exec(select(TraceEvent).where(TraceEvent.kind == kind)))


def only_notice(store: Store) -> Notice:
    with store.read() as session:
        (notice,) = session.exec(select(Notice)).all()
        return notice


async def test_a_notice_is_emailed_once_over_tls_with_the_trace_as_proof(
    make_config: MakeConfig, mail_server: SandboxMailServer
) -> None:
    config = notice_config(make_config, mail_server.port, mail_server.ca_file)
    store = open_store(config)
    metrics = Metrics()
    notifier = TraceNotifier(store, {ORG: ("admin@test.dk", "it@test.dk")})

    # GIVEN a notice raised twice under the same key (two instances, or a rerun after a crash)
    for _ in range(2):
        notifier.notify(ORG, "Mailbox drop needs re-authentication", "Polling stopped.", key="reauth:drop:1")

    # WHEN the sender runs twice
    first = await send_notices(store, config, metrics, owner="a")
    second = await send_notices(store, config, metrics, owner="b")

    # THEN one e-mail reached both administrators through the TLS relay, with the console link
    assert (first.sent, second.sent) == (1, 0)
    (mail,) = received(mail_server.mail_dir)
    assert mail["To"] == "admin@test.dk, it@test.dk" and mail["From"] == "postbud@test.dk"
    assert mail["Subject"] == "[postbud] Mailbox drop needs re-authentication"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert b"Polling stopped." in body and b"https://postbud.test.dk/queue?org=12345678" in body
    # AND the trace proves it was sent, the notice is marked so, and the metric moved
    notice = only_notice(store)
    (proof,) = events(store, "notification_sent")
    assert notice.status == "sent" and proof.detail["notice"] == notice.id
    assert proof.detail["to"] == ["admin@test.dk", "it@test.dk"]
    assert metrics.registry.get_sample_value("postbud_notices_total",
                                             {"kind": "notification", "outcome": "sent"}) == 1


async def test_a_failed_send_is_retried_and_tls_is_never_skipped(
    make_config: MakeConfig, tmp_path: Path, mail_server: SandboxMailServer
) -> None:
    # GIVEN a relay that offers no TLS on the configured port
    port, ca_file = mail_server.port, mail_server.ca_file
    await mail_server.stop()
    plain = await serve_smtp(MaildirHandler(tmp_path / "plain"), port=port)
    config = notice_config(make_config, port, ca_file)
    store = open_store(config)
    metrics = Metrics()
    TraceNotifier(store, {ORG: ("admin@test.dk",)}).notify(ORG, "Escalation", "2 letters", kind="escalation")
    now = datetime.now(timezone.utc)
    try:
        # WHEN the sender runs: nothing goes out in clear, the notice waits for its retry
        run = await send_notices(store, config, metrics, owner="a", clock=lambda: now)
    finally:
        plain.close()
        await plain.wait_closed()
    assert (run.sent, run.retried) == (0, 1)
    assert list((tmp_path / "plain").glob("*.eml")) == []
    notice = only_notice(store)
    assert notice.status == "pending" and notice.attempts == 1 and notice.next_attempt_at >= now + timedelta(seconds=60)
    assert "TLS" in (notice.last_error or "") or "STARTTLS" in (notice.last_error or "")
    assert metrics.registry.get_sample_value("postbud_notices_total", {"kind": "escalation", "outcome": "retry"}) == 1

    # AND before its retry time nothing is tried; after it, through the TLS relay, it goes once
    server = SandboxMailServer(tmp_path / "mail2", tmp_path / "ca", port=port)
    await server.start()
    try:
        early = await send_notices(store, config, metrics, owner="a", clock=lambda: now + timedelta(seconds=30))
        late = await send_notices(store, config, metrics, owner="a", clock=lambda: now + timedelta(minutes=5))
    finally:
        await server.stop()
    assert (early.sent, late.sent) == (0, 1)
    assert len(received(tmp_path / "mail2")) == 1 and only_notice(store).status == "sent"


async def test_a_sender_that_died_mid_send_is_taken_over_once_its_lease_ends(
    make_config: MakeConfig, mail_server: SandboxMailServer
) -> None:
    config = notice_config(make_config, mail_server.port, mail_server.ca_file)
    store = open_store(config)
    TraceNotifier(store, {ORG: ("admin@test.dk",)}).notify(ORG, "Reminder", "1 letter", kind="reminder")
    now = datetime.now(timezone.utc)
    # GIVEN a sender that leased the notice and died before marking it
    assert len(claim(store, "dead", now=now, ttl=timedelta(minutes=5), limit=10)) == 1
    # WHEN another sender runs while the lease holds, and after it ran out
    during = await send_notices(store, config, owner="b", clock=lambda: now + timedelta(minutes=1))
    after = await send_notices(store, config, owner="b", clock=lambda: now + timedelta(minutes=6))
    again = await send_notices(store, config, owner="c", clock=lambda: now + timedelta(hours=6))
    # THEN it is sent exactly once, and never again once marked sent
    assert (during.sent, after.sent, again.sent) == (0, 1, 0)
    assert len(received(mail_server.mail_dir)) == 1


async def test_a_notice_with_nobody_to_tell_is_only_recorded(make_config: MakeConfig) -> None:
    config = make_config()
    store = open_store(config)
    TraceNotifier(store, {}).notify(ORG, "Mailbox drop needs re-authentication", "Polling stopped.")
    with store.read() as session:
        assert session.exec(select(Notice)).all() == []
    (note,) = events(store, "notification")
    assert note.detail["to"] == [] and note.detail["notice"] is None
