"""Every official MeMo sample in ../shared/memo parses to the values its XML holds."""

from __future__ import annotations

import dataclasses

from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from connectors.memo import parse_memo
from core.domain import Attention, DocumentKind, Flags, MessageType, NormalizedMessage, Party

FULL_UUID = "8c2ea15d-61fb-4ba9-9366-42f8b194c114"
SMS_UUID = "fcdcf318-59b6-427c-9879-4f0af833d593"
ATTACHMENT_UUID = "78212f5c-6d79-4012-8ed1-e2420243bd17"
THIS_IS_A_TEST = b"This is a test"


@pytest.fixture
def memo_dir(shared_dir: Path) -> Path:
    return shared_dir / "memo"


def load(memo_dir: Path, name: str) -> NormalizedMessage:
    return parse_memo((memo_dir / name).read_bytes())


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_minimum_example(memo_dir: Path, version: str) -> None:
    msg = load(memo_dir, f"v{version}/MeMo_Minimum_Example.xml")
    assert msg.format == f"memo-{version}"
    assert msg.message_id == FULL_UUID
    assert msg.message_type is MessageType.DIGITALPOST
    assert msg.title == "Pladsanvisning"
    assert msg.sender == Party(id="12345678", id_type="CVR", name="Kommunen")
    assert msg.recipient == Party(id="2211771212", id_type="CPR", name=None)
    assert msg.attention is None
    assert msg.flags == Flags()
    assert msg.sent_at == datetime(2018 if version == "1.1" else 2024, 5, 3, 12, 0, tzinfo=UTC)
    assert msg.sent_at is not None and msg.sent_at.tzinfo is not None
    assert msg.notification is None and msg.post_type is None and msg.forward is None
    assert msg.replies == () and msg.content_data == {}
    (main,) = msg.documents
    assert main.kind is DocumentKind.MAIN and main.document_id is None and main.label is None
    (file,) = main.files
    assert (file.name, file.media_type, file.language, file.content) == (
        "Pladsanvisning.pdf", "application/pdf", "da", THIS_IS_A_TEST)
    assert msg.text == ""  # "This is a test" is not a real PDF


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nemsms_example_has_no_body(memo_dir: Path, version: str) -> None:
    msg = load(memo_dir, f"v{version}/MeMo_NemSMS.xml")
    assert msg.format == f"memo-{version}"
    assert msg.message_id == SMS_UUID
    assert msg.message_type is MessageType.NEMSMS
    assert msg.title == "Label Text"
    assert msg.notification == "Message Text"
    assert msg.text == "Message Text"  # NEMSMS: the notification is the text rules read
    assert msg.sender == Party(id="Sender ID", id_type="CVR", name="Sender Label")
    assert msg.recipient == Party(id="Recipient ID", id_type="CPR", name="Recipient Label")
    assert msg.documents == () and msg.sent_at is None
    assert msg.flags == Flags()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_attachment_example_has_two_text_files(memo_dir: Path, version: str) -> None:
    msg = load(memo_dir, f"v{version}/MeMo_with_attachment.xml")
    assert msg.message_id == ATTACHMENT_UUID
    assert msg.title == "Label Text"
    assert msg.recipient == Party(id="Recipient ID", id_type="CPR", name=None)
    assert msg.sent_at == datetime(2000, 1, 1, tzinfo=UTC)
    assert msg.main_document is not None
    assert [(f.name, f.media_type, f.content) for f in msg.main_document.files] == [
        ("File1.txt", "text/plain", b"File content 1"),
        ("File2.txt", "text/plain", b"File content 2"),
    ]
    assert msg.text == "File content 1"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_full_example_header(memo_dir: Path, version: str) -> None:
    msg = load(memo_dir, f"v{version}/MeMo_Full_Example.xml")
    v12 = version == "1.2"
    assert msg.format == f"memo-{version}"
    assert msg.message_id == FULL_UUID
    assert msg.title == "Besked fra Børneforvaltningen"
    assert msg.notification == "Du har fået digitalpost fra Kommunen vedr. din ansøgning om børnehaveplads."
    assert msg.flags == Flags(reply_allowed=True, mandatory=v12, legal_notification=False)
    assert msg.post_type == "MYNDIGHEDSPOST"
    assert msg.sender == Party(id="12345678", id_type="CVR", name="Kommunen")
    assert msg.recipient == Party(id="2211771212", id_type="CPR", name="Mette Hansen")
    assert msg.sent_at == datetime(2018, 5, 3, 12, 0, tzinfo=UTC)
    expected = Attention(
        person_id="2211771212",
        person_name="Mette Hansen",
        production_unit="1234567890",
        gln="5798000012345",
        email="m.hansen@gmail.com",
        se_number="12345678",
        telephone="12345678",
        eid="12345678_1234567890",
        content_responsible_id="22334455",
        content_responsible="[Ansvarlig]",
        sor="468031000016004",
        # 1.2's recipient also has a structured address, which is the line when given (issue 14)
        address="Gaden 7A, 3. th, C/O, 9000 Aalborg, DK" if v12 else "Bakketoppen 6, 9000 Aalborg",
    )
    assert msg.attention is not None
    kept = {f.name: getattr(msg.attention, f.name) for f in dataclasses.fields(Attention)
            if getattr(expected, f.name) is not None}
    assert Attention(**kept) == expected  # the rest (names, agents, labels, parts): test_memo_attention.py
    assert msg.forward is not None
    assert msg.forward.message_uuid == FULL_UUID
    assert msg.forward.original_message_at == datetime(2021, 3, 15, 12, 0, tzinfo=UTC)
    assert msg.forward.original_sender == "Kommunen"
    assert msg.forward.original_content_responsible == "Børnehaven, Tusindfryd"
    assert msg.forward.comment == "kommentar til modtageren"
    first, second = msg.replies
    assert (first.message_id, first.message_uuid, first.reply_uuid) == ("MSG-12344", FULL_UUID, None)
    assert (first.sender_id, first.recipient_id, first.case_id) == ("12345678", "1234567890", "SAG-456")
    assert first.comment == "Tilbud om børnehaveplads til Emilie Hansen"
    assert second.message_uuid == "8c2ea15d-61fb-4ba9-9366-42f8b194c657"
    assert second.reply_uuid == FULL_UUID and second.case_id == "SAG-4567"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_full_example_content_data(memo_dir: Path, version: str) -> None:
    data = load(memo_dir, f"v{version}/MeMo_Full_Example.xml").content_data
    expected = {
        "memo_message_id": "MSG-12345",
        "message_code": "Pladsanvisning",
        "reply_by": "2018-09-30T12:00:00Z" if version == "1.1" else "2025-09-30T12:00:00Z",
        "do_not_deliver_until": "2018-09-15" if version == "1.1" else "2025-09-15",
        "cpr": "2512169996",
        "cpr_name": "Emilie Hansen",
        "cvr": "12345678",
        "license_number": "AB12345",
        "chassis_number": "WFR18ZZ67W094959",
        "property_number": "ABC1234",
        "case_id": "SAG-12345",
        "case_system": "Sagssystem 1234",
        "kle": "00.00.00",
        "kle_version": "Maj 2018",
        "form": "00.00.00.00",
        "form_version": "Opgavenøglen v2.12",
        "p_number": "1234567890",
        "education_code": "123ABC",
        "additional.Navn 1": "Værdi 1",
        "additional.Navn 2": "Værdi 2",
        "sender_attention.person_name": "Hans Hansen",
        "sender_attention.content_responsible": "Børnehaven, Tusindfryd",
        "sender_attention.generating_system": "KommunaltPostSystem",
        "sender_attention.eid": "CVR:12345678-RID:1234567890123",
        # 1.2 adds an unstructured address beside the structured one: the structured one stays the
        # line in both versions (issue 14), the unstructured one is kept beside it.
        "sender_attention.address": "Gaden 7A, 3. th, C/O, 9000 Aalborg, DK",
        "sender_attention.unstructured_address": None if version == "1.1" else "Bakketoppen 6, 9000 Aalborg",
        "sender_contact_point.id": "241d39f6-998e-4929-b198-ccacbbf4b330",
        "sender_contact_info.Barnets navn": "Emilie Hansen",
        "recipient_contact_point.label": "Kommunen, Pladsanvisningen",
        "forward_contact_point_id": "241d39f6-998e-4929-b198-ccacbbf4b330",
        "reply.0.generating_system_id": "ABC-123",
        "reply.1.extra.Att": "tekst",
    }
    assert {k: data.get(k) for k in expected} == expected
    if version == "1.2":
        assert data["representative_id"] == "87654321"
        assert data["representative_id_type"] == "CVR"
        assert data["representative_label"] == "Repræsentant Kommune"
        assert data["forward_original_representative"] == "Repræsentant Kommune"
    else:
        assert not any(k.startswith(("representative_", "forward_original_")) for k in data)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_full_example_documents(memo_dir: Path, version: str) -> None:
    msg = load(memo_dir, f"v{version}/MeMo_Full_Example.xml")
    assert [(d.kind, d.document_id, d.label) for d in msg.documents] == [
        (DocumentKind.MAIN, "456", "Tilbud om børnehaveplads"),
        (DocumentKind.ADDITIONAL, "789", "Tilbud om børnehaveplads"),
        (DocumentKind.ADDITIONAL, "678", "Tilbud om børnehaveplads, vejledning"),
        (DocumentKind.TECHNICAL, "222555", "Teknisk dokument"),
    ]
    assert [(f.name, f.media_type) for f in msg.files()] == [
        ("Pladsanvisning.pdf", "application/pdf"),
        ("Pladsanvisning.txt", "text/plain"),
        ("Pladsanvisning.pdf", "application/pdf"),
        ("Praktiske oplysninger.doc", "application/msword"),
        ("vejledning.pdf", "application/pdf"),
        ("TekniskDokument.xml", "text/xml"),
    ]
    assert all(f.content == THIS_IS_A_TEST and f.language == "da" for f in msg.files())
    # The PDF is fake, so the text comes from the main document's text/plain rendition.
    assert msg.text == "This is a test"
    scheme = "http" if version == "1.1" else "https"
    survey, booking = msg.documents[0].actions
    assert survey == {
        "label": "Spørgeskema",
        "action_code": "SELVBETJENING",
        "start": "2018-11-09T12:00:00Z",
        "end": "2018-12-09T12:00:00Z",
        "url": f"{scheme}://www.tusindfryd.dk/spørgeskema.html",
    }
    assert booking["action_code"] == "AFTALE"
    assert booking["reservation_uuid"] == "8C2EA15D-61FB-4BA9-9366-42F8B194D241"
    assert booking["location"] == "Gl. Landevej 61, 9000 aalborg, Rød stue"
    assert booking["organizer_name"] == "Jette Hansen"
    register = msg.documents[2].actions[0]
    assert register["url"].endswith("info?key=5798009811578&keytype=GLN")  # &amp; decoded once
    assert msg.documents[3].actions == ()


def test_full_example_1_2_starts_with_a_bom(memo_dir: Path) -> None:
    raw = (memo_dir / "v1.2/MeMo_Full_Example.xml").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert parse_memo(raw).format == "memo-1.2"


@pytest.mark.parametrize("name", [
    "v1.1/MeMo_Full_Example.xml", "v1.1/MeMo_Minimum_Example.xml", "v1.2/MeMo_with_attachment.xml",
])
def test_any_namespace_prefix_is_accepted(memo_dir: Path, name: str) -> None:
    original = (memo_dir / name).read_bytes()
    root = etree.fromstring(original)
    # Re-serialize with the MeMo namespace as the default namespace (no prefix at all).
    renamed = original.replace(b"<memo:", b"<").replace(b"</memo:", b"</").replace(
        b"xmlns:memo=", b"xmlns=")
    assert etree.fromstring(renamed).tag == root.tag
    assert parse_memo(renamed) == parse_memo(original)
    other = original.replace(b"memo:", b"dp:").replace(b"xmlns:memo=", b"xmlns:dp=")
    assert parse_memo(other) == parse_memo(original)
