"""Routing with the recipients file (groups expanded, channel preference, a channel turned off) and the
worker delivering one message by e-mail and by webhook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlmodel import col, select
from typer.testing import CliRunner
from worker_testkit import (
    ORG,
    deliver,
    delivery_toml,
    drop,
    letter,
    recipients_toml,
    state,
    vouch,
)

from delivery.channels import (
    EmailChannel,
    WebhookChannel,
    delivery_token,
    smtp_settings,
)
from delivery.recipients import RecipientsFile
from delivery.smtp import SmtpSender
from delivery.webhook import verify_webhook
from postbud.runtime import Runtime
from core.storage.models import Delivery, Message, utcnow
from postbud.cli.app import app
from router.decision import Action, Decision, Facts
from router.stage import route_next

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

SECRET = "hook-secret"


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("POSTBUD_TEST_HOOK", SECRET)
    extra = f"""
[org.{ORG}.recipients.erp]
name = "ERP"
channel = "webhook"
smime_cert = "{smime_recipient.cert_path}"
webhook = {{ url = "https://erp.test.example/hook", secret = {{ env = "POSTBUD_TEST_HOOK" }} }}

[org.{ORG}.groups]
everyone = ["reception", "erp"]
"""
    recipients = recipients_toml(tmp_path, smime_recipient, extra=extra)
    runtime = Runtime.create(make_config(extra_org='default_route = ["everyone"]',
                                         extra=delivery_toml(smtp, recipients)))
    yield runtime
    await runtime.aclose()


async def collect_and_route_with_directory(rt: Runtime, channels: tuple[str, ...] | None = None) -> str:
    drop(rt, "letter.eml", letter(1))
    await rt.dispatcher.run_all_once()
    await rt.dispatcher.shutdown()
    assert route_next(rt.store, rt.decider, rt.metrics, directory=rt.recipients, channels=channels)
    with rt.store.read() as session:
        (message,) = session.exec(select(Message)).all()
        return message.id


def outbox(rt: Runtime) -> list[tuple[str, str]]:
    with rt.store.read() as session:
        rows = session.exec(select(Delivery).order_by(col(Delivery.recipient)))
        return [(d.recipient, d.channel) for d in rows]


async def test_group_is_expanded_and_each_recipient_gets_its_channel(rt: Runtime, smtp: RunningSmtp) -> None:
    mid = await collect_and_route_with_directory(rt)
    assert outbox(rt) == [("erp", "webhook"), ("reception", "email")]
    # WHEN both are approved and the worker runs with a fake document system behind the webhook
    vouch(rt)
    vouch(rt, "erp")
    received: list[dict[str, object]] = []
    status = {"code": 503}

    def hook(request: httpx.Request) -> httpx.Response:
        received.append(verify_webhook(request.headers, request.content, SECRET.encode()))
        return httpx.Response(status["code"], json={})

    assert isinstance(rt.recipients, RecipientsFile)
    settings = rt.config.delivery
    email = EmailChannel(SmtpSender(smtp_settings(settings)), from_address=settings.from_address,
                         message_id_domain=settings.message_id_domain)
    webhook = WebhookChannel(httpx.AsyncClient(transport=httpx.MockTransport(hook)))
    try:
        channels = {"email": email, "webhook": webhook}
        assert await deliver(rt, channels=channels) == 2
        # THEN e-mail went out, the webhook's 503 is retried later ...
        assert len(smtp.handler.messages) == 1
        assert sorted(state(rt, mid).deliveries) == [("erp", "pending", 1), ("reception", "delivered", 1)]
        assert state(rt, mid).message == "delivering"
        status["code"] = 200
        assert await deliver(rt, channels=channels, now=utcnow() + timedelta(hours=2)) == 1
    finally:
        await email.aclose()
        await webhook.aclose()
    # ... and then accepted: the same id both times, documents encrypted, message delivered
    first, second = received
    with rt.store.read() as session:
        row = session.exec(select(Delivery).where(Delivery.recipient == "erp")).one()
    assert first["id"] == second["id"] == delivery_token(row.idempotency_key)
    sealed = second["sealed"]
    assert isinstance(sealed, dict) and sealed["encryption"] == "cms"
    assert b"%PDF" not in json.dumps(second).encode()
    assert state(rt, mid).message == "delivered"
    replies = {e.reason for e in state(rt, mid).events if e.kind == "delivery_sent"}
    assert replies == {"HTTP 200", "queued as test"}


async def test_a_channel_turned_off_falls_back_to_the_organisation_default(rt: Runtime) -> None:
    await collect_and_route_with_directory(rt, channels=("email",))
    assert outbox(rt) == [("erp", "email"), ("reception", "email")]


async def test_without_a_directory_routing_keeps_the_named_targets(rt: Runtime) -> None:
    drop(rt, "letter.eml", letter(1))
    await rt.dispatcher.run_all_once()
    await rt.dispatcher.shutdown()
    assert route_next(rt.store, rt.decider, rt.metrics)
    assert outbox(rt) == [("everyone", "email")]


class HoldEverything:
    def decide(self, facts: Facts) -> Decision:
        return Decision(Action.HOLD, decided_by="default", reason="no rule")


async def test_a_hand_placement_goes_by_the_recipients_own_channel(rt: Runtime, smtp: RunningSmtp) -> None:
    # GIVEN a held message and erp, a recipient whose channel is the webhook
    drop(rt, "letter.eml", letter(1))
    await rt.dispatcher.run_all_once()
    await rt.dispatcher.shutdown()
    assert route_next(rt.store, HoldEverything(), rt.metrics, directory=rt.recipients)
    with rt.store.read() as session:
        (message,) = session.exec(select(Message)).all()
    vouch(rt, "erp")
    # WHEN a person places it with erp through `postbud queue assign`
    assert rt.config.path is not None
    placed = CliRunner().invoke(app, ["-c", str(rt.config.path), "queue", "assign", message.id, "erp"])
    assert placed.exit_code == 0, placed.output
    # THEN it goes out by webhook, not by e-mail
    assert outbox(rt) == [("erp", "webhook")]
    received: list[dict[str, object]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        received.append(verify_webhook(request.headers, request.content, SECRET.encode()))
        return httpx.Response(200, json={})

    webhook = WebhookChannel(httpx.AsyncClient(transport=httpx.MockTransport(hook)))
    try:
        assert await deliver(rt, channels={"webhook": webhook}) == 1
    finally:
        await webhook.aclose()
    assert len(received) == 1 and smtp.handler.messages == []
    assert state(rt, message.id).message == "delivered"
