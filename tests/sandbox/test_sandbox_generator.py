"""The sandbox generator: realistic, varied Danish business mail, the same for the same seed."""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest
from pypdf import PdfReader

from sandbox.generator import company_name, generate
from sandbox.letters import SENDERS
from core.domain import DocumentKind, MessageType, NormalizedMessage

CVR = "12345674"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def mail() -> list[NormalizedMessage]:
    return generate(CVR, 400, seed=5)


def test_same_seed_same_mail_byte_for_byte(mail: list[NormalizedMessage]) -> None:
    again = generate(CVR, 400, seed=5)
    assert again == mail  # frozen dataclasses compare every field, file bytes included


def test_other_seed_or_cvr_gives_other_mail(mail: list[NormalizedMessage]) -> None:
    assert {m.message_id for m in generate(CVR, 50, seed=6)}.isdisjoint(m.message_id for m in mail)
    other = generate("30624378", 50, seed=5)
    assert {m.recipient.id for m in other} == {"30624378"}
    assert other[0].recipient.name == company_name("30624378") != company_name(CVR)


def test_ids_are_uuid4_and_unique(mail: list[NormalizedMessage]) -> None:
    assert all(UUID4.match(m.message_id) for m in mail)
    assert len({m.message_id for m in mail}) == len(mail)


def test_the_mix_of_senders_and_kinds(mail: list[NormalizedMessage]) -> None:
    senders = Counter(m.sender.name for m in mail)
    assert set(senders) == {s.name for s in SENDERS}
    kinds = Counter(m.message_type for m in mail)
    assert 0.03 < kinds[MessageType.NEMSMS] / len(mail) < 0.15
    attention = sum(m.attention is not None for m in mail) / len(mail)
    assert 0.4 < attention < 0.6
    assert any(m.attention and m.attention.person_name for m in mail)
    assert any(m.attention and m.attention.content_responsible for m in mail)
    assert 0.03 < sum(m.forward is not None for m in mail) / len(mail) < 0.15
    assert 0.1 < sum(m.flags.reply_allowed for m in mail) / len(mail) < 0.7
    assert any(m.replies for m in mail)
    assert any(len(m.documents) == 2 for m in mail)
    assert all(m.sent_at is not None and m.sent_at.tzinfo is not None for m in mail)
    assert [m.sent_at for m in mail] == sorted(m.sent_at for m in mail)


def test_nemsms_has_a_notification_and_no_body(mail: list[NormalizedMessage]) -> None:
    sms = [m for m in mail if m.message_type is MessageType.NEMSMS]
    assert sms and all(not m.documents and m.notification and m.text == m.notification for m in sms)


def test_main_document_is_a_real_pdf_with_danish_text(mail: list[NormalizedMessage]) -> None:
    letters = [m for m in mail if m.message_type is MessageType.DIGITALPOST][:25]
    for message in letters:
        main = message.main_document
        assert main is not None and main.kind is DocumentKind.MAIN
        [pdf] = main.files
        assert pdf.media_type == "application/pdf" and pdf.name.endswith(".pdf") and pdf.language == "da"
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        assert message.title in text.replace("\n", " ") or message.title.removeprefix("Videresendt: ") in text
        assert message.sender.name in text
        if message.attention and message.attention.labels():
            assert message.attention.labels()[0] in text
    assert any(ch in m.text for m in letters for ch in "æøå")


def test_forwarded_titles_say_so(mail: list[NormalizedMessage]) -> None:
    forwarded = [m for m in mail if m.forward is not None]
    assert forwarded and all(m.title.startswith("Videresendt: ") for m in forwarded)
    assert all(UUID4.match(m.forward.message_uuid) and m.forward.original_sender for m in forwarded)


@pytest.mark.parametrize("cvr", ["1234567", "1234567a", ""])
def test_rejects_what_is_not_a_cvr(cvr: str) -> None:
    with pytest.raises(ValueError, match="CVR"):
        generate(cvr, 1)
