"""What e-Boks messages become: Latin-1 bodies, 0-byte low-assurance documents, attachments, safe XML."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from connectors.base import PermanentError, TransientError
from sandbox.providers.eboks import FakeEboks
from sandbox.providers.eboks_model import FakeAttachment, FakeMessage
from connectors.eboks.xmlparse import XmlError, XmlProblem, parse, parse_messages
from sandbox.faults import Fault
from sandbox.generator import generate
from core.domain import DocumentKind, MessageType

CVR = "12345674"
LETTER = "Kære modtager, beløbet er på 1.234,50 kr. Venlig hilsen Ærø"
DANISH = "Årsopgørelse for Ærø Æblegård – ændret"  # the dash is outside Latin-1 on purpose


def _letter(message_id: str, *, public: bool, body: bytes = b"", fmt: str = "plain",
            attachments: list[FakeAttachment] | None = None) -> FakeMessage:
    return FakeMessage(message_id=message_id, subject=DANISH.replace(" – ændret", ""),
                       sender="Ærø Kommune" if public else "Nordisk Erhvervsbank A/S",
                       received=datetime(2025, 3, 4, 9, 30, tzinfo=timezone.utc), format=fmt,
                       body=body or LETTER.encode("latin-1"),
                       attachments=attachments or [], public=public)


async def _only(connector: Any) -> Any:
    page = await connector.list_new(None)
    assert len(page.refs) == 1
    return page.refs[0]


@pytest.mark.parametrize("fake_options", [{"latin1": True}])
async def test_latin1_listings_and_bodies_decode(fake: FakeEboks, make_connector: Any) -> None:
    # GIVEN a provider that answers in undeclared ISO-8859-1, with a Latin-1 plain-text letter
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000001", public=False))
    connector = make_connector()
    try:
        fetched = await connector.fetch(await _only(connector))
    finally:
        await connector.aclose()
    # THEN names and text come out as Danish, not mojibake
    message = fetched.message
    assert message.title == "Årsopgørelse for Ærø Æblegård"
    assert message.sender.name == "Nordisk Erhvervsbank A/S"
    main = message.main_document
    assert main is not None and main.files[0].media_type == "text/plain; charset=iso-8859-1"
    assert "beløbet er på 1.234,50 kr" in message.text
    assert message.format == "eboks" and message.message_type is MessageType.DIGITALPOST


@pytest.mark.parametrize("fake_options", [{"latin1": True}])
async def test_characters_outside_latin1_survive_as_references(fake: FakeEboks, make_connector: Any) -> None:
    letter = _letter("2025A03A04A09B30B00B000002", public=False)
    letter.subject = DANISH
    fake.add_fake(fake.share_for(CVR), letter)
    connector = make_connector()
    try:
        ref = await _only(connector)
        fetched = await connector.fetch(ref)
    finally:
        await connector.aclose()
    assert fetched.message.title == DANISH


async def test_a_zero_byte_public_document_is_refused_not_delivered_empty(
        fake: FakeEboks, make_connector: Any) -> None:
    # GIVEN an activation-code (low-assurance) session and a letter from an authority
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000003", public=True))
    connector = make_connector(auth_mode="activation")
    try:
        ref = await _only(connector)
        # THEN the 0-byte document is reported with its reason and evidence
        with pytest.raises(PermanentError, match="0 bytes.*rsa") as caught:
            await connector.fetch(ref)
        assert caught.value.raw and b"2025A03A04A09B30B00B000003" in caught.value.raw
    finally:
        await connector.aclose()
    # AND the same letter reads fine once the device logs on with its RSA key
    connector = make_connector(auth_mode="rsa")
    try:
        fetched = await connector.fetch(ref)
    finally:
        await connector.aclose()
    assert fetched.message.main_document is not None
    assert fetched.message.main_document.files[0].size > 0


async def test_private_senders_read_fine_in_a_low_assurance_session(fake: FakeEboks, make_connector: Any) -> None:
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000004", public=False))
    connector = make_connector(auth_mode="activation")
    try:
        fetched = await connector.fetch(await _only(connector))
    finally:
        await connector.aclose()
    assert fetched.message.text


@pytest.mark.parametrize("fake_options", [{"low_assurance": "hide"}])
async def test_hidden_public_mail_is_simply_not_listed(fake: FakeEboks, make_connector: Any) -> None:
    share = fake.share_for(CVR)
    fake.add_fake(share, _letter("2025A03A04A09B30B00B000005", public=True))
    fake.add_fake(share, _letter("2025A03A04A09B30B00B000006", public=False))
    connector = make_connector(auth_mode="activation")
    try:
        page = await connector.list_new(None)
    finally:
        await connector.aclose()
    assert [r.key for r in page.refs] == ["2025A03A04A09B30B00B000006"]


async def test_generated_letters_map_with_attachments_and_pdf_text(fake: FakeEboks, make_connector: Any) -> None:
    messages = [m for m in generate(CVR, 40, seed=9) if len(m.documents) > 1][:2]
    assert messages, "the generator should produce letters with attachments"
    fake.add_messages(messages)
    connector = make_connector()
    try:
        page = await connector.list_new(None)
        fetched = {r.key: await connector.fetch(r) for r in page.refs}
    finally:
        await connector.aclose()
    for original in messages:
        got = fetched[original.message_id].message
        assert got.title == original.title
        assert got.sender.name == original.sender.name
        assert got.recipient.id == CVR and got.recipient.id_type == "CVR"
        assert got.sent_at is not None and abs((got.sent_at - original.sent_at).total_seconds()) < 1
        kinds = [d.kind for d in got.documents]
        assert kinds[0] is DocumentKind.MAIN and DocumentKind.ADDITIONAL in kinds
        assert got.main_document is not None and original.main_document is not None
        assert got.main_document.files[0].content == original.main_document.files[0].content
        assert got.main_document.files[0].media_type == "application/pdf"
        assert got.main_document.files[0].name.endswith(".pdf")
        assert original.sender.name and original.sender.name in got.text


async def test_a_message_fetched_but_not_acknowledged_survives_a_restart(
        fake: FakeEboks, make_connector: Any) -> None:
    # GIVEN a fetch (which marks the letter read on e-Boks) and a crash before the commit
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000007", public=False))
    first = make_connector()
    ref = await _only(first)
    await first.fetch(ref)
    await first.aclose()
    assert not fake.share_for(CVR).find(ref.key)[1].unread  # type: ignore[index]
    # WHEN postbud starts again THEN the letter is still offered, until acknowledged
    second = make_connector()
    try:
        assert await _only(second) == ref
        await second.acknowledge(ref)
        await second.acknowledge(ref)
        assert (await second.list_new(None)).refs == ()
    finally:
        await second.aclose()
    assert fake.acknowledged() == {ref.key}


async def test_a_poisoned_detail_is_permanent_with_its_bytes(fake: FakeEboks, make_connector: Any) -> None:
    keys = fake.add_messages(generate(CVR, 2, seed=1))
    fake.set_poison(keys[0])
    connector = make_connector()
    try:
        refs = {r.key: r for r in (await connector.list_new(None)).refs}
        with pytest.raises(PermanentError) as caught:
            await connector.fetch(refs[keys[0]])
        assert caught.value.raw is not None and keys[0].encode() in caught.value.raw
        await connector.fetch(refs[keys[1]])
    finally:
        await connector.aclose()


@pytest.mark.parametrize("fake_options", [{"content_error_rate": 1.0}])
async def test_content_500_is_transient(fake: FakeEboks, make_connector: Any) -> None:
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000008", public=False))
    connector = make_connector()
    try:
        ref = await _only(connector)
        with pytest.raises(TransientError, match="HTTP 500"):
            await connector.fetch(ref)
        fake.content_error_rate = 0.0
        assert (await connector.fetch(ref)).message.text
    finally:
        await connector.aclose()


async def test_an_html_page_in_place_of_a_document_is_never_delivered(fake: FakeEboks, make_connector: Any) -> None:
    fake.add_fake(fake.share_for(CVR), _letter("2025A03A04A09B30B00B000009", public=False, fmt="PDF",
                                               body=b"%PDF-1.4 not really"))
    connector = make_connector()
    try:
        ref = await _only(connector)
        fake.faults.inject(Fault.non_json(), path="/content")
        with pytest.raises(TransientError, match="HTML page"):
            await connector.fetch(ref)
    finally:
        await connector.aclose()


def test_xml_with_a_doctype_or_entities_is_refused() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b'<Messages xmlns="urn:eboks:mobile:1.0.0"><MessageInfo id="1" name="&lol2;"/></Messages>')
    with pytest.raises(XmlError) as caught:
        parse(bomb, "application/xml")
    assert caught.value.kind is XmlProblem.UNSAFE
    external = b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/evil.dtd"><x/>'
    with pytest.raises(XmlError):
        parse(external, "application/xml")


def test_messages_parse_with_or_without_the_namespace() -> None:
    bare = (b'<Root><Messages><MessageInfo id="7" name="Hej" unread="true" format="PDF">'
            b"<Sender>SKAT</Sender></MessageInfo></Messages></Root>")
    (info,) = parse_messages(parse(bare))
    assert (info.message_id, info.subject, info.sender, info.unread, info.format) == (
        "7", "Hej", "SKAT", True, "pdf")
