"""The webhook finished (issue 20): sealed envelope, back-off on timeouts, the 4xx policy with its
alert, its own timeout, one secret syntax, and the README's example receiver against a real delivery."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from worker_testkit import ORG, deliver, delivery_toml, drop, letter, recipients_toml, state, vouch

from core.domain import File
from core.storage.models import Delivery, utcnow
from delivery.channels import WebhookChannel
from delivery.errors import WebhookPermanent, WebhookRefused, WebhookTransient
from delivery.recipients import KeyKind, load_recipients
from delivery.webhook import build_envelope, post_webhook, webhook_client
from postbud.runtime import Runtime
from router.stage import route_next
from sandbox.testca import LocalCA

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, ServeFactory, SmimeRecipient

    from tests.conftest import MakeConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "delivery" / "examples" / "webhook_receiver.py"
SECRET = "hook-secret"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl_decrypt(openssl: str, der: bytes, who: SmimeRecipient, tmp: Path) -> bytes:
    (tmp / "sealed.der").write_bytes(der)
    done = subprocess.run([openssl, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(tmp / "sealed.der"),
                           "-inkey", str(who.key_path)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sealed_envelope_shows_only_its_id(tmp_path: Path, openssl: str, smime_recipient: SmimeRecipient) -> None:
    # WHEN an envelope is built as it is by default
    body = build_envelope(delivery_id="d7", trace_id="trace-77-abc", sender="Skattestyrelsen", title="Årsopgørelse",
                          received_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                          files=[File("brev-til-mette.pdf", "application/pdf", PDF)],
                          key_kind=KeyKind.SMIME, key=smime_recipient.cert_pem)
    # THEN only version, id and the sealed object are readable; no metadata travels in clear
    envelope = json.loads(body)
    assert set(envelope) == {"version", "id", "sealed"} and envelope["version"] == 2
    for clear in (b"Skattestyrelsen", "Årsopgørelse".encode(), b"brev-til-mette", b"2026-03-01", b"trace-77-abc", b"%PDF"):
        assert clear not in body
    # AND the recipient's key opens everything
    inner = json.loads(openssl_decrypt(openssl, base64.b64decode(envelope["sealed"]["data"]), smime_recipient,
                                       tmp_path))
    assert envelope["sealed"]["encryption"] == "cms"
    assert (inner["title"], inner["sender"], inner["trace_id"]) == ("Årsopgørelse", "Skattestyrelsen", "trace-77-abc")
    assert inner["received_at"].startswith("2026-03-01")
    [doc] = inner["documents"]
    assert doc["name"] == "brev-til-mette.pdf" and base64.b64decode(doc["data"]) == PDF


@pytest.mark.parametrize(("status", "error"),
                         [(401, WebhookRefused), (403, WebhookRefused), (404, WebhookRefused), (410, WebhookRefused),
                          (400, WebhookPermanent), (422, WebhookPermanent), (413, WebhookPermanent),
                          (408, WebhookTransient), (502, WebhookTransient)])
async def test_the_4xx_policy(status: int, error: type[Exception]) -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(status)))
    async with client:
        with pytest.raises(error) as caught:
            await post_webhook(client, "https://erp.test.example/hook", b"{}", b"s")
    assert type(caught.value) is error


def test_one_secret_syntax_and_the_old_one_still_read(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text("s3cret\n", encoding="utf-8")
    path = tmp_path / "recipients.toml"
    path.write_text(f"""
[org.{ORG}]
default_channel = "webhook"
[org.{ORG}.recipients.a]
name = "A"
webhook = {{ url = "https://a.example/hook", secret = {{ env = "HOOK_A" }} }}
[org.{ORG}.recipients.b]
name = "B"
webhook = {{ url = "https://b.example/hook", secret = {{ file = "hook.secret" }}, envelope = "clear" }}
[org.{ORG}.recipients.c]
name = "C"
webhook = {{ url = "https://c.example/hook", secret = "env:HOOK_C" }}
""", encoding="utf-8")
    d = load_recipients(path)
    a, b, c = (d.get(ORG, r).webhook for r in "abc")
    assert a is not None and b is not None and c is not None
    assert a.secret.env == "HOOK_A" and a.envelope == "sealed"
    assert b.secret.file == (tmp_path / "hook.secret").resolve() and b.secret.reveal() == "s3cret"
    assert b.envelope == "clear"
    assert c.secret.env == "HOOK_C"  # deprecated form, same meaning


# --- the worker, with a webhook recipient ------------------------------------------------------------


@pytest.fixture
async def smtp(smtp_server: ServeFactory) -> RunningSmtp:
    return await smtp_server()


@pytest.fixture
def hook_port() -> int:
    return free_port()


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch, test_ca: LocalCA, hook_port: int) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("POSTBUD_TEST_HOOK", SECRET)
    extra = f"""
[org.{ORG}.recipients.erp]
name = "ERP"
channel = "webhook"
smime_cert = "{smime_recipient.cert_path}"
webhook = {{ url = "https://127.0.0.1:{hook_port}/hook", secret = {{ env = "POSTBUD_TEST_HOOK" }} }}
"""
    recipients = recipients_toml(tmp_path, smime_recipient, extra=extra)
    settings = (f'webhook_ca_file = "{test_ca.cert_path}"\nwebhook_timeout_seconds = 0.5\n'
                "smtp_timeout_seconds = 30\nmax_attempts = 3")
    runtime = Runtime.create(make_config(extra_org='default_route = ["erp"]',
                                         extra=delivery_toml(smtp, recipients, extra=settings)))
    yield runtime
    await runtime.aclose()


async def routed(rt: Runtime) -> str:
    drop(rt, "letter.eml", letter(1))
    await rt.dispatcher.run_all_once()
    await rt.dispatcher.shutdown()
    assert route_next(rt.store, rt.decider, rt.metrics, directory=rt.recipients)
    vouch(rt, "erp")
    with rt.store.read() as session:
        return session.exec(select(Delivery.message_id)).one()


def row(rt: Runtime) -> Delivery:
    with rt.store.read() as session:
        return session.exec(select(Delivery)).one()


@pytest.fixture
async def slow_receiver(test_ca: LocalCA, hook_port: int) -> AsyncIterator[list[float]]:
    """An HTTPS receiver that answers after 3 s: longer than the webhook timeout, shorter than SMTP's."""
    calls: list[float] = []

    async def hook(request: Request) -> Response:
        calls.append(utcnow().timestamp())
        await asyncio.sleep(3)
        return Response(status_code=200)

    issued = test_ca.issue("slow-hook")
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
                                           host="127.0.0.1", port=hook_port, log_level="warning",
                                           ssl_certfile=str(issued.cert_path), ssl_keyfile=str(issued.key_path)))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield calls
    server.should_exit = True
    server.force_exit = True
    await task


async def test_a_timeout_backs_off_under_the_webhooks_own_timeout(rt: Runtime, slow_receiver: list[float]) -> None:
    mid = await routed(rt)
    # WHEN the receiver is slower than webhook_timeout_seconds (0.5 s; the SMTP timeout is 30 s)
    started = utcnow()
    assert await deliver(rt) == 1
    took = (utcnow() - started).total_seconds()
    # THEN the attempt gave up after the webhook's timeout and the row waits with back-off
    assert took < 3
    delivery = row(rt)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "did not answer in time" in (delivery.last_reply or "")
    wait = (delivery.next_attempt_at.replace(tzinfo=dt.UTC) - started.replace(tzinfo=dt.UTC)).total_seconds()
    assert wait >= rt.config.delivery.retry_base_seconds / 2
    # AND a run right away does not retry it
    assert await deliver(rt) == 0
    assert len(slow_receiver) == 1
    assert "delivery_retry" in state(rt, mid).kinds()


async def test_401_is_retried_with_back_off_and_alerted_then_dead_lettered(rt: Runtime) -> None:
    mid = await routed(rt)
    hook = WebhookChannel(httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(401))))
    now = utcnow()
    try:
        # WHEN the receiver refuses us (a secret rotated on its side only)
        assert await deliver(rt, channels={"webhook": hook}, now=now) == 1
        # THEN the letter is not dead-lettered: it waits with back-off, and the refusal is counted
        assert row(rt).status == "pending"
        assert row(rt).next_attempt_at.replace(tzinfo=dt.UTC) > now.replace(tzinfo=dt.UTC) + dt.timedelta(seconds=4)
        refused = rt.metrics.registry.get_sample_value(
            "postbud_delivery_refused_total", {"channel": "webhook", "reason": "webhook_refused"})
        assert refused == 1
        # AND only once max_attempts (3) are used up is it dead-lettered
        for hours in (2, 4):
            assert await deliver(rt, channels={"webhook": hook}, now=now + dt.timedelta(hours=hours)) == 1
    finally:
        await hook.aclose()
    assert row(rt).status == "failed" and row(rt).attempts == 3
    assert state(rt, mid).message == "failed"


class ExampleReceiver:
    """The README's example receiver, run as a process on the recipient's port."""

    def __init__(self, folder: Path, issued_cert: Path, issued_key: Path, port: int) -> None:
        self.folder = folder
        self._args = [sys.executable, str(EXAMPLE), "--port", str(port), "--cert", str(issued_cert), "--key",
                      str(issued_key), "--seen", str(folder / "seen.sqlite3"), "--out", str(folder / "kept")]
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "POSTBUD_WEBHOOK_SECRET": SECRET}
        self._proc = subprocess.Popen(self._args, env=env, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None and "listening" in self._proc.stdout.readline()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            assert self._proc.stdout is not None
            self._proc.stdout.close()
            self._proc = None


@pytest.fixture
def example_receiver(tmp_path: Path, test_ca: LocalCA, hook_port: int) -> Iterator[ExampleReceiver]:
    issued = test_ca.issue("example-hook")
    receiver = ExampleReceiver(tmp_path / "receiver", issued.cert_path, issued.key_path, hook_port)
    receiver.folder.mkdir()
    receiver.start()
    yield receiver
    receiver.stop()


async def test_the_example_receiver_keeps_a_real_delivery_once(rt: Runtime, example_receiver: ExampleReceiver,
                                                               openssl: str, smime_recipient: SmimeRecipient,
                                                               tmp_path: Path, test_ca: LocalCA,
                                                               hook_port: int) -> None:
    mid = await routed(rt)
    # WHEN postbud delivers to the example receiver over HTTPS
    assert await deliver(rt) == 1
    assert state(rt, mid).message == "delivered"
    # THEN it kept the sealed envelope and recorded its id
    kept_dir = example_receiver.folder / "kept"
    [kept] = kept_dir.glob("*.json")
    envelope = json.loads(kept.read_bytes())
    with sqlite3.connect(example_receiver.folder / "seen.sqlite3") as db:
        assert [r[0] for r in db.execute("SELECT id FROM seen")] == [envelope["id"]]
    inner = json.loads(openssl_decrypt(openssl, base64.b64decode(envelope["sealed"]["data"]), smime_recipient,
                                       tmp_path))
    assert inner["title"] == "Momsangivelse 1" and inner["trace_id"] == mid
    # AND a re-send of the same delivery after the receiver restarted is answered 2xx and not kept again
    kept.unlink()
    example_receiver.stop()
    example_receiver.start()
    url = f"https://127.0.0.1:{hook_port}/hook"
    async with webhook_client(ca_file=test_ca.cert_path) as client:
        assert await post_webhook(client, url, json.dumps(envelope).encode(), SECRET.encode()) == 200
        # and a forged request is refused
        with pytest.raises(WebhookRefused):
            await post_webhook(client, url, json.dumps(envelope).encode(), b"wrong")
    assert list(kept_dir.glob("*.json")) == []
