"""What a sender wrote cannot forge cover-note lines or steer where a recipient's client saves a file."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from typing import TYPE_CHECKING

import pytest

from core.domain import File
from delivery.envelope import Cover, build_inner, cover_text
from delivery.recipients import KeyKind
from delivery.webhook import build_envelope

if TYPE_CHECKING:
    from delivery_testkit import SmimeRecipient

RECEIVED = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.UTC)
FORGED = Cover(sender="Skat\r\nBcc: attacker@evil.example", title="Rykker\nBcc: attacker@evil.example\x1b[2J",
               received_at=RECEIVED, trace_id="tt-1")


def test_cover_note_fields_are_one_line_each() -> None:
    lines = cover_text(FORGED).splitlines()
    assert not [line for line in lines if line.startswith("Bcc:")]
    assert "Title:       Rykker Bcc: attacker@evil.example [2J" in lines
    assert "\x1b" not in cover_text(FORGED)


@pytest.mark.parametrize(("name", "expected"), [
    ("../../../../tmp/x", "x"),
    ("..\\..\\Windows\\win.ini", "win.ini"),
    ("/etc/passwd", "passwd"),
    (".bashrc", "bashrc"),
    ("faktura\r\nContent-Type: text/html.pdf", "html.pdf"),
    ("faktura\r\nContent-Type: text.pdf", "faktura Content-Type_ text.pdf"),
    ("", "document"),
])
def test_attachment_names_reach_recipients_as_safe_base_names(name: str, expected: str) -> None:
    inner = build_inner(from_addr="postbud@example.com", to_addrs=["a@example.com"],
                        message_id="<postbud.1@example.com>", date=RECEIVED, cover=FORGED,
                        files=[File(name, "application/pdf", b"%PDF-1 x")])
    message = email.message_from_bytes(inner, policy=email.policy.default)
    (part,) = [p for p in message.walk() if p.get_content_disposition() == "attachment"]
    assert part.get_filename() == expected
    assert message["Subject"] == "Rykker Bcc: attacker@evil.example [2J"
    assert "Bcc" not in message


def test_webhook_documents_carry_safe_base_names(smime_recipient: SmimeRecipient) -> None:
    body = json.loads(build_envelope(delivery_id="d1", trace_id="t1", sender="s", title="t", received_at=RECEIVED,
                                     files=[File("../../../../tmp/x", "application/pdf", b"%PDF")],
                                     key_kind=KeyKind.SMIME, key=smime_recipient.cert_pem, sealed=False))
    assert body["documents"][0]["name"] == "x"
