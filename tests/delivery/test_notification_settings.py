"""The recipient's own notification settings: the signed link under every notice opens a page where they
switch notices off or on and ask for a separate address (used once the link mailed to it is opened);
switching off stops notices, never the encrypted letter of a recipient who gets the letter itself.
The administrator sees and sets the same through `postbud recipients notifications`."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.applications import Starlette
from worker_testkit import ORG, collect_and_route, deliver, delivery_toml, recipients_toml, state, vouch

from core.storage.models import utcnow
from delivery.preferences import PreferenceError, open_settings_token, settings_token
from postbud.cli import invoke
from postbud.preferences_page import preferences_routes
from postbud.runtime import Runtime

if TYPE_CHECKING:
    from delivery_testkit import RunningSmtp, SmimeRecipient

    from tests.conftest import MakeConfig

BOSS = """
[org.{org}.recipients.boss]
name = "Direktøren"
email = "boss@example.com"
notify = "notice"
notification_address = "boss.phone@example.com"
smime_cert = "{cert}"
"""


@pytest.fixture
async def rt(make_config: MakeConfig, smtp: RunningSmtp, smime_recipient: SmimeRecipient,
             tmp_path: Path) -> AsyncIterator[Runtime]:
    recipients = recipients_toml(tmp_path, smime_recipient, extra=BOSS.format(org=ORG, cert=smime_recipient.cert_path))
    runtime = Runtime.create(make_config(extra_org='default_route = ["reception", "boss"]',
                                         extra=delivery_toml(smtp, recipients)))
    vouch(runtime, "reception")
    vouch(runtime, "boss")
    yield runtime
    await runtime.aclose()


def client(rt: Runtime) -> httpx.AsyncClient:
    app = Starlette(routes=preferences_routes(rt.store, lambda: rt.config, lambda: rt.recipients))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://postbud.test.example")


def mails_to(smtp: RunningSmtp, address: str) -> list[bytes]:
    return [c for c, _ in smtp.handler.messages if f"To: {address}".encode() in c.split(b"\r\n\r\n")[0]]


def text_of(raw: bytes) -> str:
    return str(email.message_from_bytes(raw, policy=email.policy.default).get_content())


async def letter_arrives(rt: Runtime, n: int) -> str:
    (mid,) = [m for m in await collect_and_route(rt, n) if "delivery_sent" not in state(rt, m).kinds()]
    await deliver(rt)
    return mid


async def test_switching_off_stops_notices_but_never_the_encrypted_letter(rt: Runtime, smtp: RunningSmtp) -> None:
    # GIVEN the first letter: alice gets the letter itself, the boss a notice with the settings link
    await letter_arrives(rt, 1)
    assert len(mails_to(smtp, "alice@example.com")) == 1
    (notice,) = mails_to(smtp, "boss.phone@example.com")
    link = re.search(r"https://postbud\.test\.example(/recipients/notifications/\S+)", text_of(notice))
    assert link is not None and b"Momsangivelse" not in notice

    async with client(rt) as web:
        page = await web.get(link.group(1))
        assert page.status_code == 200 and "slået til" in page.text and "boss.phone@example.com" in page.text
        # WHEN the boss switches notifications off on the page (alice cannot: she has nothing to switch)
        off = await web.post(link.group(1), data={"action": "off"})
        assert off.status_code == 200 and "Beskeder er slået fra" in off.text
    mid = await letter_arrives(rt, 2)
    # THEN the next letter still reaches alice encrypted, and the boss gets no notice
    assert len(mails_to(smtp, "alice@example.com")) == 2
    assert b"application/pkcs7-mime" in mails_to(smtp, "alice@example.com")[-1]
    assert len(mails_to(smtp, "boss.phone@example.com")) == 1
    sent = {e.detail["recipient"]: e.detail for e in state(rt, mid).events if e.kind == "delivery_sent"}
    assert sent["boss"]["notified"] is False and sent["boss"]["content_sent"] is False
    assert "mode" not in sent["reception"]

    # WHEN switched on again, notices come again
    async with client(rt) as web:
        assert "slået til" in (await web.post(link.group(1), data={"action": "on"})).text
    await letter_arrives(rt, 3)
    assert len(mails_to(smtp, "boss.phone@example.com")) == 2


async def test_a_separate_address_is_used_only_once_its_mailed_link_is_opened(rt: Runtime, smtp: RunningSmtp) -> None:
    token = settings_token(rt.store.vault, ORG, "boss", now=utcnow(), days=30)
    async with client(rt) as web:
        # WHEN the boss asks for a new address
        asked = await web.post(f"/recipients/notifications/{token}",
                               data={"action": "address", "address": "assistant@example.com"})
        assert asked.status_code == 200 and "assistant@example.com" in asked.text
        (mail,) = mails_to(smtp, "assistant@example.com")
        found = re.search(r"https://postbud\.test\.example(/recipients/notifications/confirm/\S+)", text_of(mail))
        assert found is not None
        confirm = found.group(1)
        # THEN until the link is opened, notices go to the old address
        await letter_arrives(rt, 1)
        assert len(mails_to(smtp, "boss.phone@example.com")) == 1
        assert len(mails_to(smtp, "assistant@example.com")) == 1
        # AND opening the link (GET, as a mail scanner would) changes nothing; confirming (POST) does
        assert "Bekræft" in (await web.get(confirm)).text
        await letter_arrives(rt, 2)
        assert len(mails_to(smtp, "boss.phone@example.com")) == 2
        done = await web.post(confirm)
        assert done.status_code == 200 and "assistant@example.com" in done.text
        # AND the link works once
        assert (await web.post(confirm)).status_code == 404
    await letter_arrives(rt, 3)
    assert len(mails_to(smtp, "assistant@example.com")) == 2
    assert len(mails_to(smtp, "boss.phone@example.com")) == 2


async def test_the_signed_link_is_refused_when_altered_or_expired(rt: Runtime) -> None:
    now = utcnow()
    token = settings_token(rt.store.vault, ORG, "boss", now=now, days=30)
    assert open_settings_token(rt.store.vault, token, now=now) == (ORG, "boss")
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    expired = settings_token(rt.store.vault, ORG, "boss", now=now - dt.timedelta(days=31), days=30)
    for bad in (flipped, token[:-3], expired, "x"):
        with pytest.raises(PreferenceError):
            open_settings_token(rt.store.vault, bad, now=now)
    async with client(rt) as web:
        for bad in (flipped, expired):
            # THEN neither shows the settings nor changes them
            page = await web.post(f"/recipients/notifications/{bad}", data={"action": "off"})
            assert page.status_code == 404 and "Linket virker ikke" in page.text
        assert "slået til" in (await web.get(f"/recipients/notifications/{token}")).text
    assert "expired" in str(pytest.raises(PreferenceError, open_settings_token, rt.store.vault, expired, now=now).value)


async def test_the_administrator_lists_and_sets_notifications(rt: Runtime, smtp: RunningSmtp,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    async def postbud(*args: str) -> int:
        # in a thread: the command runs its own event loop (to mail the confirmation link)
        return await asyncio.to_thread(invoke, ["-c", str(rt.config.path), "recipients", "notifications", *args])

    async def listed() -> dict[str, dict[str, object]]:
        capsys.readouterr()
        assert await postbud("list", "--json") == 0
        return {i["recipient"]: i for i in json.loads(capsys.readouterr().out)}

    before = await listed()
    assert before["boss"] == {"organisation": ORG, "recipient": "boss", "name": "Direktøren", "mode": "notice",
                              "enabled": True, "address": "boss.phone@example.com", "separate_address": None,
                              "pending_address": None}
    assert before["reception"]["mode"] == "letter"
    assert await postbud("set", ORG, "Direktøren", "--off") == 0
    assert (await listed())["boss"]["enabled"] is False
    assert await postbud("set", ORG, "boss", "--on", "--address", "pa@example.com") == 0
    boss = (await listed())["boss"]
    assert boss["enabled"] is True and boss["pending_address"] == "pa@example.com"
    assert boss["address"] == "boss.phone@example.com" and len(mails_to(smtp, "pa@example.com")) == 1
    # bad input: one line, a usage error, nothing changed
    capsys.readouterr()
    assert await postbud("set", ORG, "boss", "--on", "--off") == 2
    assert await postbud("set", ORG, "boss", "--address", "nope") == 2
    assert await postbud("set", ORG, "nobody", "--off") == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
