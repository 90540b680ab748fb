"""Per-recipient notification mode (a notice without content instead of the letter) and recipients of kind
"forward" (encrypted unless marked TLS-only, which the trace records)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import col, select
from worker_testkit import ORG, deliver, delivery_toml, drop, letter, recipients_toml, state, vouch

from core.storage.models import Delivery, Message
from postbud.runtime import Runtime
from router.stage import route_next

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

EXTRA = """
[org.{org}.recipients.boss]
name = "Direktøren"
email = "boss@example.com"
notify = "notice"
notification_address = "boss.phone@example.com"
smime_cert = "{cert}"

[org.{org}.recipients.ledger]
name = "Bogføringssystemet"
kind = "forward"
email = "inbox@ledger.example"
tls_only = true

[org.{org}.recipients.archive]
name = "Arkivsystemet"
kind = "forward"
email = "inbox@archive.example"
"""


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    recipients = recipients_toml(tmp_path, smime_recipient, extra=EXTRA.format(org=ORG, cert=smime_recipient.cert_path))
    runtime = Runtime.create(make_config(extra_org='default_route = ["boss", "ledger", "archive"]',
                                         extra=delivery_toml(smtp, recipients)))
    yield runtime
    await runtime.aclose()


async def routed(rt: Runtime) -> str:
    drop(rt, "letter.eml", letter(1))
    await rt.dispatcher.run_all_once()
    await rt.dispatcher.shutdown()
    assert route_next(rt.store, rt.decider, rt.metrics, directory=rt.recipients)
    with rt.store.read() as session:
        return session.exec(select(Message.id)).one()


def rows(rt: Runtime, mid: str) -> dict[str, str]:
    with rt.store.read() as session:
        return {d.recipient: d.status for d in session.exec(select(Delivery).where(Delivery.message_id == mid)
                                                              .order_by(col(Delivery.recipient)))}


async def test_a_notice_recipient_gets_no_content_and_a_tls_only_forward_is_recorded(
        rt: Runtime, smtp: RunningSmtp) -> None:
    mid = await routed(rt)
    vouch(rt, "boss")
    await deliver(rt)
    assert all(tls for _, tls in smtp.handler.messages)

    def to(addr: str) -> bytes | None:
        return next((c for c, _ in smtp.handler.messages if addr.encode() in c.split(b"\r\n\r\n")[0]), None)

    # THEN the notice went to the notification address: the sender's name, no title, no document
    notice = to("boss.phone@example.com")
    assert notice is not None
    assert b"A letter is waiting for you" in notice and b"Skattestyrelsen" in notice
    assert b"Momsangivelse" not in notice and b"brev-1.pdf" not in notice and b"JVBERi" not in notice
    # AND the TLS-only forward target got the letter itself, and the trace says it went unencrypted
    forwarded = to("inbox@ledger.example")
    assert forwarded is not None
    assert b"Momsangivelse 1" in forwarded and b"brev-1.pdf" in forwarded
    sent = {e.detail["recipient"]: e.detail for e in state(rt, mid).events if e.kind == "delivery_sent"}
    assert sent["ledger"]["tls_only"] is True and sent["ledger"]["encrypted"] is False
    assert sent["boss"]["mode"] == "notice" and sent["boss"]["content_sent"] is False
    # AND a forward target not marked TLS-only, without a key, gets nothing in clear: it is held
    assert rows(rt, mid)["archive"] == "held"
    assert to("inbox@archive.example") is None
