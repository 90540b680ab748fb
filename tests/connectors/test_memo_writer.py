"""build_memo writes valid MeMo that parse_memo reads back to the same message (property-style)."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from connectors.memo import build_memo, parse_memo
from connectors.text import extract_text
from core.domain import (
    Attention,
    Document,
    DocumentKind,
    File,
    Flags,
    ForwardData,
    MessageType,
    NormalizedMessage,
    Party,
    ReplyData,
)

FIXTURES = Path(__file__).parent / "fixtures"
LETTER_PDF = (FIXTURES / "letter.pdf").read_bytes()
ALPHABET = "abcdefghijklmnopqrstuvwxyzæøåÆØÅ0123456789 <>&'\"-.,:/"
SHARED_XSD = Path(__file__).resolve().parents[3] / "shared/memo/xsd-mortenm12-memo/schemas"


def words(rng: random.Random, lo: int = 1, hi: int = 40) -> str:
    text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(lo, hi))).strip()
    return text or "x"  # the reader strips text, so generated values never start or end with spaces


def maybe(rng: random.Random, value: str) -> str | None:
    return value if rng.random() < 0.5 else None


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def when(rng: random.Random) -> datetime:
    moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 200_000_000))
    if rng.random() < 0.3:
        moment = moment.replace(microsecond=rng.randint(1, 999_999))
    # Any offset is fine on the way in: MeMo stores UTC and equal instants compare equal.
    return moment.astimezone(timezone(timedelta(hours=rng.choice([0, 1, 2]))))


def attention(rng: random.Random) -> Attention | None:
    if rng.random() < 0.3:
        return None
    system_id = maybe(rng, words(rng, 3, 10))
    return Attention(
        person_id=maybe(rng, str(rng.randint(10**9, 10**10 - 1))),
        person_name=maybe(rng, words(rng)),
        production_unit=maybe(rng, str(rng.randint(10**9, 10**10 - 1))),
        gln=maybe(rng, str(rng.randint(10**12, 10**13 - 1))),
        email=maybe(rng, "bogholderi@firma.dk"),
        se_number=maybe(rng, str(rng.randint(10**7, 10**8 - 1))),
        telephone=maybe(rng, "12345678"),
        eid=maybe(rng, words(rng, 5, 20)),
        content_responsible_id=maybe(rng, words(rng, 3, 10)),
        content_responsible=maybe(rng, words(rng)),
        generating_system_id=system_id,
        generating_system=maybe(rng, words(rng)) if system_id else None,  # needs its id
        sor=maybe(rng, words(rng, 3, 15)),
        address=maybe(rng, words(rng, 10, 60)),
    ) or Attention(person_name="Bogholderiet")


def content_data(rng: random.Random, version: str, replies: int) -> dict[str, str]:
    items: dict[str, str] = {}
    groups = [
        {"cpr": "0101701234", "cpr_name": words(rng)},
        {"cvr": str(rng.randint(10**7, 10**8 - 1))},
        {"license_number": "AB12345", "chassis_number": words(rng, 5, 17)},
        {"case_id": words(rng, 3, 12), "case_system": words(rng)},
        {"kle": "85.02.02", "kle_version": "2024", "kle_label": words(rng)},
        {"form": "00.00.00.00", "form_version": "v2", "form_activity": words(rng), "form_label": words(rng)},
        {"p_number": str(rng.randint(10**9, 10**10 - 1)), "p_name": words(rng)},
        {"education_code": "123ABC"},
        {"address": words(rng, 10, 60)},
        {"memo_message_id": words(rng, 3, 12), "message_code": words(rng, 3, 12)},
        {"additional_notification": words(rng), "reply_by": "2026-12-01T12:00:00Z"},
        {"do_not_deliver_until": "2026-11-30"},
        {"sender_id_type_label": words(rng), "recipient_id_type_label": words(rng)},
        {"sender_attention.person_name": words(rng), "sender_attention.email": "sag@kommune.dk"},
        {"sender_contact_point.id": new_uuid(rng), "sender_contact_point.label": words(rng),
         "sender_contact_info.Sagsnummer": words(rng)},
        {"recipient_contact_point.id": words(rng, 3, 10), "recipient_contact_point.group": "1.2"},
    ]
    if version == "1.2":
        groups.append({"representative_id": "87654321", "representative_id_type": "CVR",
                       "representative_label": words(rng)})
    for group in groups:
        if rng.random() < 0.4:
            items.update(group)
    for n in range(rng.randint(0, 3)):
        items[f"additional.Felt {n}"] = words(rng)
    for n in range(replies):
        if rng.random() < 0.5:
            items[f"reply.{n}.generating_system_id"] = words(rng, 3, 10)
            items[f"reply.{n}.extra.Intern note"] = words(rng)
    return items


def a_file(rng: random.Random) -> File:
    kind = rng.choice(["pdf", "text", "binary"])
    if kind == "pdf":
        return File("brev.pdf", "application/pdf", LETTER_PDF, language="da")
    if kind == "text":
        return File("brev.txt", "text/plain", words(rng, 5, 80).encode(), language=rng.choice(["da", "en"]))
    return File("data.bin", "application/octet-stream", rng.randbytes(rng.randint(0, 64)), language="da")


def an_action(rng: random.Random) -> dict[str, str]:
    action = {"label": words(rng), "action_code": rng.choice(["AFTALE", "BETALING", "INFORMATION"])}
    if rng.random() < 0.5:
        action |= {"start": "2026-11-10T09:00:00Z", "end": "2026-11-10T10:00:00Z"}
    if rng.random() < 0.5:
        action["url"] = "https://example.dk/betal?id=1&x=2"
    elif rng.random() < 0.5:
        action |= {"description": words(rng), "reservation_uuid": new_uuid(rng), "abstract": words(rng),
                   "location": words(rng), "reservation_start": "2026-11-10T09:00:00Z",
                   "reservation_end": "2026-11-10T10:00:00Z", "organizer_name": words(rng)}
    return action


def documents(rng: random.Random) -> tuple[Document, ...]:
    docs = [Document(DocumentKind.MAIN, tuple(a_file(rng) for _ in range(rng.randint(1, 3))),
                     document_id=maybe(rng, "D-1"), label=maybe(rng, words(rng)),
                     actions=tuple(an_action(rng) for _ in range(rng.randint(0, 2))))]
    for _ in range(rng.randint(0, 2)):
        docs.append(Document(DocumentKind.ADDITIONAL, (a_file(rng),), label=maybe(rng, words(rng)),
                             actions=tuple(an_action(rng) for _ in range(rng.randint(0, 1)))))
    if rng.random() < 0.3:
        docs.append(Document(DocumentKind.TECHNICAL, (File("t.xml", "text/xml", b"<x/>", "da"),), document_id="T"))
    return tuple(docs)


def a_message(rng: random.Random, version: str) -> NormalizedMessage:
    sms = rng.random() < 0.2
    replies = tuple(
        ReplyData(message_uuid=new_uuid(rng), message_id=maybe(rng, "MSG-1"), reply_uuid=maybe(rng, new_uuid(rng)),
                  sender_id=maybe(rng, "12345678"), recipient_id=maybe(rng, "87654321"),
                  case_id=maybe(rng, words(rng, 3, 10)), comment=maybe(rng, words(rng, 1, 300)))
        for _ in range(rng.randint(0, 2))
    )
    forward = None
    if rng.random() < 0.3:
        forward = ForwardData(message_uuid=new_uuid(rng), original_sender=words(rng), original_message_at=when(rng),
                              original_content_responsible=maybe(rng, words(rng)), comment=maybe(rng, words(rng)))
    docs = () if sms else documents(rng)
    message = NormalizedMessage(
        message_id=new_uuid(rng),
        message_type=MessageType.NEMSMS if sms else MessageType.DIGITALPOST,
        title=words(rng, 1, 256),
        sender=Party(id=str(rng.randint(10**7, 10**8 - 1)), id_type=rng.choice(["CVR", "CPR", "Andet"]),
                     name=words(rng)),
        recipient=Party(id=str(rng.randint(10**7, 10**8 - 1)), id_type="CVR", name=maybe(rng, words(rng))),
        format=f"memo-{version}",
        attention=attention(rng),
        documents=docs,
        sent_at=None if sms else when(rng),
        flags=Flags(reply_allowed=rng.random() < 0.5, mandatory=rng.random() < 0.5,
                    legal_notification=rng.random() < 0.5),
        notification=words(rng, 1, 160) if sms else maybe(rng, words(rng, 1, 160)),
        post_type=maybe(rng, "MYNDIGHEDSPOST"),
        forward=forward,
        replies=replies,
        content_data=content_data(rng, version, len(replies)),
    )
    return dataclasses.replace(message, text=expected_text(message))


def expected_text(message: NormalizedMessage) -> str:
    if message.message_type is MessageType.NEMSMS:
        return message.notification or ""
    main = message.main_document
    return next((t for f in (main.files if main else ()) if (t := extract_text(f))), "")


@pytest.fixture(scope="module")
def schemas() -> dict[str, etree.XMLSchema] | None:
    if not SHARED_XSD.is_dir():
        return None  # the XSD cross-check is extra; the round trip runs without it
    return {
        "1.1": etree.XMLSchema(etree.parse(str(SHARED_XSD / "MeMo_core.xsd"))),
        "1.2": etree.XMLSchema(etree.parse(str(SHARED_XSD / "Version1.2/MeMo_core.xsd"))),
    }


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("seed", range(25))
def test_round_trip(seed: int, version: str, schemas: dict[str, etree.XMLSchema] | None) -> None:
    message = a_message(random.Random(f"{seed}-{version}"), version)
    raw = build_memo(message, version=version)
    assert raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<memo:Message ")
    assert parse_memo(raw) == message
    if schemas is not None:
        schema = schemas[version]
        assert schema.validate(etree.fromstring(raw)), schema.error_log


def test_version_attributes_and_literal_prefix() -> None:
    message = a_message(random.Random(1), "1.1")
    v11 = build_memo(message, version="1.1")
    v12 = build_memo(message, version="1.2")
    assert b'memoVersion="1.1" memoSchVersion="1.1.0"' in v11
    assert b'memoVersion="1.2"' in v12 and b"memoSchVersion" not in v12
    assert b"<memo:MessageHeader>" in v11 and b"<MessageHeader" not in v11
    assert parse_memo(v12).format == "memo-1.2"


def test_1_1_always_states_both_flags_and_1_2_only_raised_ones() -> None:
    message = dataclasses.replace(a_message(random.Random(2), "1.1"), flags=Flags())
    assert b"<memo:mandatory>false</memo:mandatory>" in build_memo(message, version="1.1")
    assert b"<memo:mandatory>" not in build_memo(message, version="1.2")


def test_reply_points_at_the_original() -> None:
    """The reply feature: a new message whose ReplyData names the original's UUID and case."""
    original = a_message(random.Random(3), "1.2")
    reply = NormalizedMessage(
        message_id=str(uuid.uuid4()),
        message_type=MessageType.DIGITALPOST,
        title=f"Svar: {original.title}"[:256],
        sender=Party(id=original.recipient.id, id_type="CVR", name="Firma A/S"),
        recipient=original.sender,
        format="memo-1.1",
        documents=(Document(DocumentKind.MAIN, (File("svar.txt", "text/plain", b"Tak for brevet.", "da"),)),),
        sent_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        replies=(ReplyData(message_uuid=original.message_id, case_id="SAG-1", comment="Svar på jeres brev"),),
    )
    parsed = parse_memo(build_memo(reply))
    assert parsed.replies[0].message_uuid == original.message_id
    assert parsed.replies[0].case_id == "SAG-1"
    assert parsed.recipient == original.sender
    assert parsed.text == "Tak for brevet."


def test_missing_created_time_defaults_to_now() -> None:
    message = dataclasses.replace(a_message(random.Random(4), "1.1"), sent_at=None,
                                  message_type=MessageType.DIGITALPOST,
                                  documents=(Document(DocumentKind.MAIN, (File("a.txt", "text/plain", b"a"),)),))
    before = datetime.now(UTC).replace(microsecond=0)
    parsed = parse_memo(build_memo(message))
    assert parsed.sent_at is not None and parsed.sent_at >= before
    assert parsed.files()[0].language == "da"  # a file without a language is written as Danish


@pytest.mark.parametrize(("change", "reason"), [
    ({"message_id": "not-a-uuid"}, "messageUUID 'not-a-uuid' is not a version-4 UUID"),
    ({"title": "x" * 257}, "label is 257 characters, over the limit of 256"),
    ({"message_type": MessageType.EMAIL}, "an EMAIL message cannot be written as MeMo"),
    ({"sender": Party(id="1", id_type="EMAIL", name="x")}, "idType 'EMAIL' is not one of CPR, CVR, Andet"),
    ({"sender": Party(id="1", id_type="CVR")}, "Sender: required element 'label' missing"),
    ({"sent_at": datetime(2026, 1, 1)}, "date-times must be timezone-aware"),
])
def test_messages_that_cannot_be_memo_raise_value_error(change: dict[str, object], reason: str) -> None:
    message = dataclasses.replace(a_message(random.Random(5), "1.1"), message_type=MessageType.DIGITALPOST,
                                  documents=(Document(DocumentKind.MAIN, (File("a.txt", "text/plain", b"a"),)),))
    with pytest.raises(ValueError, match=reason):
        build_memo(dataclasses.replace(message, **change))  # type: ignore[arg-type]


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="MeMo version must be one of 1.1, 1.2"):
        build_memo(a_message(random.Random(6), "1.1"), version="1.3")
