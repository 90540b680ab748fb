"""The physical post channel against the sandbox's fake print-and-mail provider over HTTPS on 127.0.0.1:
per-recipient channel over the organisation's default, cost and status in the trace, no double print on
retry, a failed letter dead-lettered, and an organisation switching post off."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlmodel import col, select
from worker_testkit import ORG, PDF, deliver, delivery_toml, drop, letter, recipients_toml, state, vouch

from core.storage.models import Delivery, Message, utcnow
from delivery.recipients import load_recipients
from postbud.runtime import Runtime
from router.stage import route_next
from sandbox.post import FakePost
from sandbox.server import serve_tls
from sandbox.testca import LocalCA

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

ARCHIVE = f"""
[org.{ORG}.recipients.archive]
name = "Arkivet"
channel = "post"
email = "archive@example.com"
smime_cert = "{{cert}}"
postal_address = {{{{ name = "Eksempel Holding ApS, Arkivet", street = "Vestergade 1", postcode = "8000", city = "Aarhus C" }}}}
"""


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def provider(tmp_path: Path, test_ca: LocalCA) -> AsyncIterator[tuple[FakePost, str]]:
    fake = FakePost(tmp_path / "post")
    async with serve_tls(fake.app, ca=test_ca, server_name="post-test") as url:
        yield fake, url


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch, test_ca: LocalCA,
             provider: tuple[FakePost, str]) -> AsyncIterator[Runtime]:
    fake, url = provider
    monkeypatch.setenv("POSTBUD_TEST_POST", fake.client_secret)
    recipients = recipients_toml(tmp_path, smime_recipient,
                                 extra=ARCHIVE.format(cert=smime_recipient.cert_path))
    settings = f"""channels = ["email", "post"]
[delivery.post]
api_url = "{url}"
client_id = "{fake.client_id}"
client_secret = {{ env = "POSTBUD_TEST_POST" }}
organisation = "{fake.organisation}"
ca_file = "{test_ca.cert_path}"
poll_interval_seconds = 0.05
poll_seconds = 0.5
"""
    runtime = Runtime.create(make_config(extra_org='default_route = ["reception", "archive"]',
                                         extra=delivery_toml(smtp, recipients, extra=settings)))
    vouch(runtime)
    yield runtime
    await runtime.aclose()


async def route(rt: Runtime, n: int, directory: object = None) -> str:
    drop(rt, f"letter-{n}.eml", letter(n))
    await rt.dispatcher.run_all_once()
    await rt.dispatcher.shutdown()
    assert route_next(rt.store, rt.decider, rt.metrics, directory=directory or rt.recipients,
                      channels=rt.config.delivery.channels)
    with rt.store.read() as session:
        return session.exec(select(Message.id).order_by(col(Message.received_at).desc())).first() or ""


def rows(rt: Runtime, mid: str) -> list[tuple[str, str, str]]:
    with rt.store.read() as session:
        found = session.exec(select(Delivery).where(Delivery.message_id == mid).order_by(col(Delivery.recipient)))
        return [(d.recipient, d.channel, d.status) for d in found]


async def test_a_post_recipient_gets_a_printed_letter_with_cost_and_status_in_the_trace(
        rt: Runtime, smtp: RunningSmtp, provider: tuple[FakePost, str]) -> None:
    fake, _ = provider
    # GIVEN the organisation's default is e-mail and archive chose post
    mid = await route(rt, 1)
    assert rows(rt, mid) == [("archive", "post", "pending"), ("reception", "email", "pending")]
    # WHEN the worker runs
    assert await deliver(rt) == 2
    # THEN reception got e-mail and the provider printed the letter's PDF for archive's address
    assert rows(rt, mid) == [("archive", "post", "delivered"), ("reception", "email", "delivered")]
    assert len(smtp.handler.messages) == 1
    [kept] = fake.folder.glob("*.pdf")
    assert kept.read_bytes() == PDF + b"1"
    record = json.loads(kept.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["address"]["city"] == "Aarhus C" and record["status"] == "sent" and record["product"] == "cheap"
    # AND the trace keeps each letter's status and cost
    sent = next(e for e in state(rt, mid).events if e.kind == "delivery_sent" and e.detail["channel"] == "post")
    assert sent.detail["letters"] == [{"id": record["id"], "status": "sent", "price": 12.5, "currency": "DKK"}]
    assert sent.detail["cost"] == 12.5 and "12.50 DKK" in (sent.reason or "")


async def test_a_retry_finds_the_letter_instead_of_printing_it_twice(rt: Runtime,
                                                                     provider: tuple[FakePost, str]) -> None:
    fake, _ = provider
    fake.polls_until_sent = 10_000  # the provider takes longer than one attempt waits
    mid = await route(rt, 1)
    assert await deliver(rt) == 2
    assert ("archive", "post", "pending") in rows(rt, mid)
    fake.polls_until_sent = 0
    assert await deliver(rt, now=utcnow() + timedelta(hours=2)) == 1
    assert ("archive", "post", "delivered") in rows(rt, mid)
    assert len(fake.letters) == 1 and len(list(fake.folder.glob("*.pdf"))) == 1


async def test_a_letter_the_provider_cannot_post_is_dead_lettered(rt: Runtime, provider: tuple[FakePost, str]) -> None:
    fake, _ = provider
    fake.fail_next = True
    mid = await route(rt, 1)
    assert await deliver(rt) == 2
    assert ("archive", "post", "failed") in rows(rt, mid)
    failed = state(rt, mid).event("delivery_failed")
    assert "undeliverable" in (failed.reason or "")


async def test_switching_post_off_returns_recipients_to_email_and_keeps_the_history(
        rt: Runtime, smtp: RunningSmtp, provider: tuple[FakePost, str]) -> None:
    fake, _ = provider
    first = await route(rt, 1)
    assert await deliver(rt) == 2
    # WHEN the organisation switches post off in the recipients file
    source = rt.config.recipients.file
    assert source is not None
    text = source.read_text(encoding="utf-8").replace('default_channel = "email"',
                                                     'default_channel = "email"\nchannels_off = ["post"]')
    source.write_text(text, encoding="utf-8")
    directory = load_recipients(source)
    rt.recipients = directory
    # THEN a new letter goes to archive by e-mail, the organisation's default ...
    second = await route(rt, 2, directory)
    assert rows(rt, second) == [("archive", "email", "pending"), ("reception", "email", "pending")]
    vouch(rt, "archive")
    assert await deliver(rt) == 2
    assert len(smtp.handler.messages) == 3
    # ... and the letter already posted keeps its row, its trace and its PDF
    assert rows(rt, first)[0] == ("archive", "post", "delivered")
    assert any(e.kind == "delivery_sent" and e.detail["channel"] == "post" for e in state(rt, first).events)
    assert len(list(fake.folder.glob("*.pdf"))) == 1


def switch_post_off(rt: Runtime, *, drop_email: bool = False) -> None:
    source = rt.config.recipients.file
    assert source is not None
    text = source.read_text(encoding="utf-8").replace('default_channel = "email"',
                                                     'default_channel = "email"\nchannels_off = ["post"]')
    if drop_email:
        text = text.replace('email = "archive@example.com"\n', "")
    source.write_text(text, encoding="utf-8")
    rt.recipients = load_recipients(source)


async def test_a_letter_waiting_for_post_goes_by_email_once_post_is_switched_off(
        rt: Runtime, smtp: RunningSmtp, provider: tuple[FakePost, str]) -> None:
    fake, _ = provider
    # GIVEN a letter waiting to be posted to archive
    mid = await route(rt, 1)
    # WHEN the organisation switches post off before it is sent
    switch_post_off(rt)
    vouch(rt, "archive")  # archive has an address and a key for e-mail
    assert await deliver(rt) == 2
    # THEN archive gets it by e-mail, the organisation's default, and nothing is printed
    assert sorted(rows(rt, mid)) == [("archive", "email", "delivered"), ("archive", "post", "held"),
                                     ("reception", "email", "delivered")]
    assert len(smtp.handler.messages) == 2 and not list(fake.folder.glob("*.pdf"))
    # AND the trace says why it went another way; the letter was never held for a person
    story = state(rt, mid)
    assert story.message == "delivered" and "held" not in story.kinds()
    moved = story.event("delivery_rerouted")
    assert moved.detail["from_channel"] == "post" and moved.detail["channel"] == "email"
    assert "switched off" in (moved.reason or "")


async def test_a_post_letter_is_held_when_the_default_channel_cannot_reach_the_recipient(rt: Runtime) -> None:
    mid = await route(rt, 1)
    switch_post_off(rt, drop_email=True)  # archive has no e-mail address
    await deliver(rt)
    assert ("archive", "post", "held") in rows(rt, mid)
    assert any("switched off" in (e.reason or "") for e in state(rt, mid).events)
    assert "delivery_rerouted" not in state(rt, mid).kinds()
