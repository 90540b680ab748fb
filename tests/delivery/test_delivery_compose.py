"""From a normalized message and a recipient to the encrypted e-mail, with the right key kind."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
import email
import email.policy
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from delivery.compose import encrypted_email, message_id_for
from delivery.errors import EncryptionError
from delivery.recipients import Recipient
from core.domain import (
    Document,
    DocumentKind,
    File,
    MessageType,
    NormalizedMessage,
    Party,
)

if TYPE_CHECKING:
    from delivery_testkit import Gpg, SmimeRecipient

RECEIVED = dt.datetime(2026, 5, 4, 8, 0, tzinfo=dt.UTC)
LETTER = NormalizedMessage(
    message_id="memo-uuid-1", message_type=MessageType.DIGITALPOST, title="Rykker",
    sender=Party(id="12345678", id_type="CVR", name="Gældsstyrelsen"),
    recipient=Party(id="87654321", id_type="CVR"), format="memo-1.2",
    documents=(Document(DocumentKind.MAIN, (File("rykker.pdf", "application/pdf", b"%PDF-1 r"),)),
               Document(DocumentKind.ADDITIONAL, (File("bilag.xml", "text/xml", b"<a/>"),))),
    text="Du skylder penge (this must never be in the cover note)",
)


def attachments(inner: bytes) -> list[tuple[str | None, bytes]]:
    msg = email.message_from_bytes(inner, policy=email.policy.default)
    return [(p.get_filename(), p.get_payload(decode=True))  # type: ignore[misc]
            for p in msg.walk() if p.get_filename()]


def test_message_id_is_deterministic_and_safe() -> None:
    assert message_id_for(42, domain="postbud.example") == "<postbud.42@postbud.example>"
    assert message_id_for(42, domain="postbud.example") == message_id_for("42", domain="postbud.example")
    with pytest.raises(ValueError):
        message_id_for("1>\r\nBcc: x", domain="postbud.example")


def test_smime_recipient_gets_smime(tmp_path: Path, openssl: str,
                                    smime_recipient: SmimeRecipient) -> None:
    alice = Recipient(id="alice", name="Alice", email="alice@example.com",
                      smime_cert=smime_recipient.cert_path)
    outer = encrypted_email(LETTER, alice, key=smime_recipient.cert_pem,
                            from_addr="postbud@example.com",
                            message_id=message_id_for(7, domain="postbud.example"),
                            trace_id="tt-7", received_at=RECEIVED)
    (tmp_path / "m.eml").write_bytes(outer)
    inner = subprocess.run([openssl, "cms", "-decrypt", "-in", str(tmp_path / "m.eml"),
                            "-inkey", str(smime_recipient.key_path)], capture_output=True,
                           check=True).stdout
    assert attachments(inner) == [("rykker.pdf", b"%PDF-1 r"), ("bilag.xml", b"<a/>")]
    msg = email.message_from_bytes(inner, policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and "Gældsstyrelsen" in body.get_content()
    assert b"Du skylder" not in inner  # the letter's text travels only inside its documents
    assert b"<postbud.7@postbud.example>" in outer.split(b"\r\n\r\n", 1)[0]


def test_pgp_recipient_gets_pgp_mime(gpg: Gpg) -> None:
    bob = Recipient(id="bob", name="Bob", email=gpg.email, pgp_key=Path("unused.asc"))
    outer = encrypted_email(LETTER, bob, key=gpg.public_key, from_addr="postbud@example.com",
                            message_id="<postbud.8@postbud.example>", trace_id="tt-8",
                            received_at=RECEIVED)
    assert outer.find(b"multipart/encrypted") > 0
    done = gpg.run("--decrypt", input=bytes(outer))
    assert done.returncode == 0, done.stderr
    assert ("rykker.pdf", b"%PDF-1 r") in attachments(done.stdout)


def test_recipient_without_key_or_address_gets_nothing() -> None:
    for nobody in (Recipient(id="carl", name="Carl", email="carl@example.com"),
                   Recipient(id="dan", name="Dan", smime_cert=Path("x.pem"))):
        with pytest.raises(EncryptionError):
            encrypted_email(LETTER, nobody, key=b"", from_addr="postbud@example.com",
                            message_id="<postbud.9@postbud.example>", trace_id="tt-9",
                            received_at=RECEIVED)


def test_long_danish_title_keeps_the_inner_message_canonical(tmp_path: Path, openssl: str,
                                                             smime_recipient: SmimeRecipient) -> None:
    # GIVEN a title long and non-ASCII enough that its encoded Subject must be folded
    title = "Påmindelse om betaling af restskat for indkomståret 2025 — Gældsstyrelsen, 3. rykker"
    letter = replace(LETTER, title=title)
    alice = Recipient(id="alice", name="Ålice Ørsted", email="alice@example.com",
                      smime_cert=smime_recipient.cert_path)
    outer = encrypted_email(letter, alice, key=smime_recipient.cert_pem, from_addr="Postbud <postbud@example.com>",
                            message_id="<postbud.10@postbud.example>", trace_id="tt-10", received_at=RECEIVED)
    (tmp_path / "m.eml").write_bytes(outer)
    inner = subprocess.run([openssl, "cms", "-decrypt", "-binary", "-in", str(tmp_path / "m.eml"),
                            "-inkey", str(smime_recipient.key_path)], capture_output=True, check=True).stdout
    # THEN every line of what the recipient decrypts ends in CRLF, and the title reads back whole
    assert inner.count(b"\n") == inner.count(b"\r\n")
    msg = email.message_from_bytes(inner, policy=email.policy.default)
    assert msg["Subject"] == title
    # and the outer headers carry the envelope's addresses unfolded, never the title
    head = outer.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "Subject: Encrypted message" in head and "=?utf-8?" not in head.split("To:", 1)[0]
    assert "alice@example.com" in head and "Message-ID: <postbud.10@postbud.example>" in head
    assert "\r\n " not in head and "\r\n\t" not in head


def test_outer_headers_are_the_same_whether_read_back_or_carried_along() -> None:
    from delivery.envelope import Cover, build_inner
    from delivery.outer import InnerMessage, outer_headers

    inner = build_inner(from_addr="Pøstbud <postbud@example.com>", to_addrs=["Åse Ø <aase@example.com>", "b@example.com"],
                        message_id="<postbud.11@postbud.example>", date=RECEIVED,
                        cover=Cover(sender="s", title="Ærlig talt " * 12, received_at=RECEIVED, trace_id="t"), files=[])
    assert isinstance(inner, InnerMessage)
    carried, read_back = outer_headers(inner), outer_headers(bytes(inner))
    assert carried == read_back
    assert carried[0].startswith("From: =?utf-8?") and carried[0].endswith(" <postbud@example.com>")
    assert carried[1].endswith(" <aase@example.com>, b@example.com") and carried[2] == "Subject: Encrypted message"
    assert carried[3:] == ["Date: Mon, 04 May 2026 08:00:00 +0000", "Message-ID: <postbud.11@postbud.example>",
                           "MIME-Version: 1.0"]
