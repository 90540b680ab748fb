"""parse_eml turns .eml files into normalized messages and refuses what is not an e-mail."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from connectors.base import PermanentError
from connectors.email import EmailError, parse_eml
from core.domain import DocumentKind, MessageType, Party

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_plain_text_mail() -> None:
    msg = parse_eml(fixture("plain_text.eml"))
    assert msg.message_type is MessageType.EMAIL
    assert msg.format == "eml"
    assert msg.message_id == "rykker-4711@leverandoer.dk"
    assert msg.title == "Rykker for faktura 4711 – betaling før fredag"
    assert msg.sender == Party(id="jens@leverandoer.dk", id_type="EMAIL", name="Jens Ørsted")
    assert msg.recipient == Party(id="bogholderi@firma.dk", id_type="EMAIL", name="Bogholderi")
    assert msg.sent_at == datetime(2026, 11, 16, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    assert msg.content_data == {
        "to": "bogholderi@firma.dk, ceo@firma.dk",
        "cc": "revisor@revision.dk",
        "in_reply_to": "faktura-4711@leverandoer.dk",
    }
    (main,) = msg.documents
    assert main.kind is DocumentKind.MAIN
    assert [(f.name, f.media_type) for f in main.files] == [("body.txt", "text/plain")]
    assert msg.text.startswith("Kære bogholderi,\n\nvi mangler betaling af faktura 4711 på 12.500 kr.")


def test_first_pdf_attachment_is_the_main_document() -> None:
    msg = parse_eml(fixture("pdf_attachment.eml"))
    assert msg.message_id == "scan-0001@firma.dk"
    assert msg.sent_at == datetime(2026, 11, 17, 14, 5, tzinfo=UTC)
    assert [(d.kind, d.files[0].name, d.files[0].media_type) for d in msg.documents] == [
        (DocumentKind.MAIN, "brev.pdf", "application/pdf"),
        (DocumentKind.ADDITIONAL, "body.txt", "text/plain"),
        (DocumentKind.ADDITIONAL, "noter.txt", "text/plain"),
    ]
    assert msg.documents[0].files[0].content == fixture("letter.pdf")
    assert msg.documents[2].files[0].content == b"Noter til brevet\n"
    assert msg.text.startswith("Faktura 2026-117 fra Skattestyrelsen")


def test_html_mail_without_message_id() -> None:
    raw = fixture("html_no_message_id.eml")
    msg = parse_eml(raw)
    assert msg.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert msg.title == "Nyhedsbrev for måneden"
    assert msg.sender == Party(id="nyhedsbrev@example.dk", id_type="EMAIL", name=None)
    # "-0000" means UTC with an unknown local zone; it must still come back tz-aware.
    assert msg.sent_at == datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
    assert msg.documents[0].files[0].name == "body.html"
    assert msg.text == "Månedens nyheder\nAndet afsnit"


def test_attachment_without_name_or_known_type() -> None:
    mail = EmailMessage(policy=policy.SMTP)
    mail["From"] = "a@b.dk"
    mail["Subject"] = "Bilag"
    mail.set_content("se bilag")
    mail.add_attachment(b"\x00\x01", maintype="application", subtype="x-weird")
    inner = EmailMessage()
    inner["Subject"] = "Videresendt"
    inner.set_content("indre besked")
    mail.add_attachment(inner)
    msg = parse_eml(mail.as_bytes())
    assert msg.recipient == Party()
    assert msg.sent_at is None
    names = [(f.name, f.media_type) for f in msg.files()]
    assert names[0] == ("body.txt", "text/plain")
    assert names[1] == ("attachment-1.bin", "application/x-weird")
    assert names[2] == ("attachment-2.eml", "message/rfc822")
    assert b"indre besked" in msg.files()[2].content


def test_single_part_pdf_mail_is_its_own_main_document() -> None:
    mail = EmailMessage(policy=policy.SMTP)
    mail["From"] = "scanner@firma.dk"
    mail["Subject"] = "Scan"
    mail.set_content(fixture("letter.pdf"), maintype="application", subtype="pdf", filename="scan.pdf")
    msg = parse_eml(mail.as_bytes())
    assert [(d.kind, d.files[0].name) for d in msg.documents] == [(DocumentKind.MAIN, "scan.pdf")]
    assert msg.text.startswith("Faktura 2026-117")


def test_headers_only_mail_has_no_documents() -> None:
    msg = parse_eml(b"From: Bo <bo@x.dk>\r\nTo: y@x.dk\r\nSubject: Tom\r\nDate: bad date\r\n\r\n")
    assert msg.documents == () and msg.text == "" and msg.sent_at is None
    assert msg.title == "Tom"


def test_undecodable_header_bytes_are_replaced_not_kept_as_surrogates() -> None:
    msg = parse_eml(b"From: a@b.dk\r\nSubject: Hej \xff\xfe verden\r\n\r\nbody")
    assert msg.title.startswith("Hej ") and msg.title.endswith(" verden")
    msg.title.encode("utf-8")  # would raise on a lone surrogate


@pytest.mark.parametrize(("raw", "reason"), [
    pytest.param(b"", "no e-mail headers found", id="empty"),
    pytest.param(b"just some text\nwithout headers\n", "no e-mail headers found", id="no headers"),
    pytest.param(bytes(range(256)) * 4, "binary data where e-mail headers should be", id="binary garbage"),
    pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "no e-mail headers found", id="a PDF"),
    pytest.param(b"X-Custom: 1\r\n\r\nbody", "no e-mail headers found", id="only unknown headers"),
])
def test_malformed_input_raises_email_error(raw: bytes, reason: str) -> None:
    with pytest.raises(EmailError, match=reason) as caught:
        parse_eml(raw)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.raw == raw


def test_oversize_is_refused() -> None:
    raw = fixture("plain_text.eml")
    with pytest.raises(EmailError, match=rf"e-mail is {len(raw)} bytes, over the limit of 100"):
        parse_eml(raw, max_bytes=100)
