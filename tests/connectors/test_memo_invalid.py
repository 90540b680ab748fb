"""Invalid and hostile MeMo raises MemoError with a precise reason, and the XSDs agree it is invalid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from connectors.base import PermanentError
from connectors.memo import MemoError, parse_memo

BASE_11 = """<?xml version="1.0" encoding="UTF-8"?>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" xmlns:grd="https://data.gov.dk/model/core/" \
memoVersion="1.1" memoSchVersion="1.1.0">
  <memo:MessageHeader>
    <memo:messageType>DIGITALPOST</memo:messageType>
    <memo:messageUUID>8C2EA15D-61FB-4BA9-9366-42F8B194C114</memo:messageUUID>
    <memo:label>Pladsanvisning</memo:label>
    <memo:reply>false</memo:reply>
    <memo:mandatory>false</memo:mandatory>
    <memo:legalNotification>false</memo:legalNotification>
    <memo:Sender>
      <memo:senderID>12345678</memo:senderID>
      <memo:idType>CVR</memo:idType>
      <memo:label>Kommunen</memo:label>
    </memo:Sender>
    <memo:Recipient>
      <memo:recipientID>87654321</memo:recipientID>
      <memo:idType>CVR</memo:idType>
      <memo:AttentionData>
        <grd:ProductionUnit><grd:productionUnitNumber>1012345678</grd:productionUnitNumber></grd:ProductionUnit>
      </memo:AttentionData>
    </memo:Recipient>
    <memo:ReplyData>
      <memo:messageUUID>8C2EA15D-61FB-4BA9-9366-42F8B194C657</memo:messageUUID>
    </memo:ReplyData>
  </memo:MessageHeader>
  <memo:MessageBody>
    <memo:createdDateTime>2018-05-03T12:00:00Z</memo:createdDateTime>
    <memo:MainDocument>
      <memo:File>
        <memo:encodingFormat>application/pdf</memo:encodingFormat>
        <memo:filename>Pladsanvisning.pdf</memo:filename>
        <memo:language>da</memo:language>
        <memo:content>VGhpcyBpcyBhIHRlc3Q=</memo:content>
      </memo:File>
    </memo:MainDocument>
  </memo:MessageBody>
</memo:Message>
"""
BASE_12 = BASE_11.replace('memoVersion="1.1" memoSchVersion="1.1.0"', 'memoVersion="1.2"')


def sub(old: str, new: str, base: str = BASE_11) -> Callable[[], bytes]:
    def make() -> bytes:
        assert old in base, old
        return base.replace(old, new, 1).encode()

    return make


def additional_reply_data(count: int) -> str:
    item = "<memo:AdditionalReplyData><memo:label>a</memo:label><memo:value>b</memo:value></memo:AdditionalReplyData>"
    return f"C657</memo:messageUUID>{item * count}"


def without_file() -> bytes:
    start, end = BASE_11.index("<memo:File>"), BASE_11.index("</memo:File>") + len("</memo:File>")
    return (BASE_11[:start] + BASE_11[end:]).encode()


# (id, make the bytes, expected reason, whether the agency's XSD can see the problem too)
CASES: list[tuple[str, Callable[[], bytes], str, bool]] = [
    ("missing label", sub("<memo:label>Pladsanvisning</memo:label>", ""),
     "MessageHeader: required element 'label' missing", True),
    ("bad uuid", sub("8C2EA15D-61FB-4BA9-9366-42F8B194C114", "x"),
     "MessageHeader/messageUUID 'x' is not a version-4 UUID", True),
    ("uuid version 1", sub("8C2EA15D-61FB-4BA9-9366-42F8B194C114", "8C2EA15D-61FB-1BA9-9366-42F8B194C114"),
     "MessageHeader/messageUUID '8C2EA15D-61FB-1BA9-9366-42F8B194C114' is not a version-4 UUID", True),
    ("reply uuid", sub("8C2EA15D-61FB-4BA9-9366-42F8B194C657", "nope"),
     "MessageHeader/ReplyData/messageUUID 'nope' is not a version-4 UUID", True),
    ("bad base64", sub("VGhpcyBpcyBhIHRlc3Q=", "VGhpcyBpcyBhIHRlc3Q"),
     "MessageBody/MainDocument/File/content is not valid base64", True),
    ("datetime not Z", sub("2018-05-03T12:00:00Z", "2018-05-03T12:00:00+01:00"),
     "MessageBody/createdDateTime '2018-05-03T12:00:00+01:00' is not a UTC date-time ending in Z", True),
    ("label too long", sub(">Pladsanvisning<", ">" + "x" * 257 + "<"),
     "MessageHeader/label is 257 characters, over the limit of 256", True),
    ("notification too long",
     sub("<memo:reply>", "<memo:notification>" + "n" * 161 + "</memo:notification><memo:reply>"),
     "MessageHeader/notification is 161 characters, over the limit of 160", True),
    ("unknown idType", sub("<memo:idType>CVR</memo:idType>", "<memo:idType>XYZ</memo:idType>"),
     "MessageHeader/Sender/idType 'XYZ' is not one of CPR, CVR, Andet", False),
    ("out of order", sub("<memo:reply>false</memo:reply>\n    <memo:mandatory>false</memo:mandatory>",
                         "<memo:mandatory>false</memo:mandatory>\n    <memo:reply>false</memo:reply>"),
     "MessageHeader: element 'reply' is out of order", True),
    ("unexpected element", sub("<memo:reply>", "<memo:colour>red</memo:colour><memo:reply>"),
     "MessageHeader: unexpected element 'colour'", True),
    ("foreign namespace", sub("<memo:reply>", '<x:reply xmlns:x="urn:x">false</x:reply><memo:reply>'),
     "MessageHeader: unexpected element '{urn:x}reply'", True),
    ("1.1 without memoSchVersion", sub(' memoSchVersion="1.1.0"', ""),
     "Message: required attribute 'memoSchVersion' missing", True),
    ("1.2 with memoSchVersion", sub('memoVersion="1.2"', 'memoVersion="1.2" memoSchVersion="1.1.0"', BASE_12),
     "Message: attribute 'memoSchVersion' is not allowed", True),
    ("1.1 without mandatory", sub("<memo:mandatory>false</memo:mandatory>", ""),
     "MessageHeader: required element 'mandatory' missing", True),
    ("Representative in 1.1", sub("</memo:Sender>", "<memo:Representative/></memo:Sender>"),
     "MessageHeader/Sender: unexpected element 'Representative'", True),
    ("unsupported version", sub('memoVersion="1.1"', 'memoVersion="2.0"'),
     "Message/@memoVersion '2.0' is not a supported MeMo version (1.1, 1.2)", False),
    ("bad message type", sub(">DIGITALPOST<", ">LETTER<"),
     "MessageHeader/messageType 'LETTER' is not one of DIGITALPOST, NEMSMS", True),
    ("bad boolean", sub("<memo:reply>false", "<memo:reply>yes"),
     "MessageHeader/reply 'yes' is not a boolean (true or false)", True),
    ("bad language", sub("<memo:language>da", "<memo:language>dan"),
     "MessageBody/MainDocument/File/language 'dan' is not a language code of at most 2 letters", True),
    ("P-number too big", sub("1012345678</grd:productionUnit", "12345x</grd:productionUnit"),
     "MessageHeader/Recipient/AttentionData/grd:ProductionUnit/grd:productionUnitNumber '12345x' "
     "is not a whole number of at most 10 digits", True),
    ("no File", without_file,
     "MessageBody/MainDocument: required element 'File' missing", True),
    ("text in a complex element", sub("<memo:reply>", "stray text<memo:reply>"),
     "MessageHeader: unexpected text content", True),
    ("element in a text element", sub(">Pladsanvisning<", "><memo:b>bold</memo:b><"),
     "MessageHeader/label: unexpected element 'b' in a text-only element", True),
    ("too many AdditionalReplyData", sub("C657</memo:messageUUID>", additional_reply_data(5)),
     "MessageHeader/ReplyData: element 'AdditionalReplyData' occurs more than 4 time(s)", True),
    ("wrong root", lambda: b'<Message xmlns="urn:other" memoVersion="1.1"/>',
     "expected memo:Message", True),
]


@pytest.mark.parametrize(("make", "reason"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_invalid_message_names_the_rule(make: Callable[[], bytes], reason: str) -> None:
    raw = make()
    with pytest.raises(MemoError) as caught:
        parse_memo(raw)
    assert reason in str(caught.value)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.raw == raw  # quarantined with its evidence


def test_error_names_the_line() -> None:
    with pytest.raises(MemoError, match=r"required element 'label' missing \(line 3\)"):
        parse_memo(sub("<memo:label>Pladsanvisning</memo:label>", "")())


def test_cpr_shaped_values_are_masked_in_reasons() -> None:
    with pytest.raises(MemoError) as caught:
        parse_memo(sub("8C2EA15D-61FB-4BA9-9366-42F8B194C114", "2211771212")())
    assert "2211771212" not in str(caught.value)
    assert "'**********' is not a version-4 UUID" in str(caught.value)


def test_base_documents_are_valid() -> None:
    assert parse_memo(BASE_11.encode()).format == "memo-1.1"
    assert parse_memo(BASE_12.encode()).format == "memo-1.2"
    # 1.2 made mandatory and legalNotification optional.
    without_flags = BASE_12.replace("<memo:mandatory>false</memo:mandatory>", "").replace(
        "<memo:legalNotification>false</memo:legalNotification>", "")
    assert parse_memo(without_flags.encode()).flags.mandatory is False


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.1" memoSchVersion="1.1.0">\
&lol3;</memo:Message>"""
EXTERNAL_ENTITY = BASE_11.replace(
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
).replace(">Pladsanvisning<", ">&xxe;<").encode()


@pytest.mark.parametrize("raw", [
    pytest.param(BILLION_LAUGHS, id="billion laughs"),
    pytest.param(EXTERNAL_ENTITY, id="external entity"),
    pytest.param(b'<!DOCTYPE memo:Message SYSTEM "http://127.0.0.1:9/x.dtd">' + BASE_11.split("?>", 1)[1].encode(),
                 id="external DTD"),
    # UTF-16 hides the DOCTYPE from a byte scan; the parsed document's docinfo still shows it.
    pytest.param(('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE m [<!ENTITY e "x">]>'
                  + BASE_11.split("?>", 1)[1]).encode("utf-16"), id="DOCTYPE in UTF-16"),
])
def test_doctype_and_entities_are_refused(raw: bytes) -> None:
    with pytest.raises(MemoError, match="DOCTYPE/entities are not allowed"):
        parse_memo(raw)


@pytest.mark.parametrize(("raw", "reason"), [
    pytest.param(BASE_11.encode()[:700], "not well-formed XML", id="truncated"),
    pytest.param(b"", "message is empty", id="empty"),
    pytest.param(bytes(range(256)) * 8, "not well-formed XML", id="binary garbage"),
    pytest.param(b"%PDF-1.4 not xml", "not well-formed XML", id="a PDF"),
    pytest.param(b"<a>" * 5000 + b"</a>" * 5000, "nested deeper than the parser's limit of 256", id="deep nesting"),
])
def test_malformed_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(MemoError, match=reason):
        parse_memo(raw)


def test_oversize_is_refused_before_parsing() -> None:
    raw = BASE_11.encode()
    with pytest.raises(MemoError, match=rf"message is {len(raw)} bytes, over the limit of 1000"):
        parse_memo(raw, max_bytes=1000)
    assert parse_memo(raw, max_bytes=len(raw)).title == "Pladsanvisning"


def test_attachment_over_libxml2s_default_text_limit_parses() -> None:
    # A 10.4 MB base64 node (a 7.8 MB PDF) is over libxml2's default cap; real letters can be that big.
    big = BASE_11.replace("VGhpcyBpcyBhIHRlc3Q=", "QUFB" * 2_600_000).encode()
    (file,) = parse_memo(big).documents[0].files
    assert file.size == 3 * 2_600_000


@pytest.fixture(scope="module")
def xsd_11() -> etree.XMLSchema:
    path = Path(__file__).resolve().parents[3] / "shared/memo/xsd-mortenm12-memo/schemas/MeMo_core.xsd"
    if not path.is_file():
        pytest.skip("the shared MeMo XSDs are not beside this checkout")
    return etree.XMLSchema(etree.parse(str(path)))


@pytest.fixture(scope="module")
def xsd_12() -> etree.XMLSchema:
    path = Path(__file__).resolve().parents[3] / "shared/memo/xsd-mortenm12-memo/schemas/Version1.2/MeMo_core.xsd"
    if not path.is_file():
        pytest.skip("the shared MeMo XSDs are not beside this checkout")
    return etree.XMLSchema(etree.parse(str(path)))


@pytest.mark.parametrize("make", [pytest.param(c[1], id=c[0]) for c in CASES if c[3]])
def test_the_agency_xsd_also_rejects_each_case(
    make: Callable[[], bytes], xsd_11: etree.XMLSchema, xsd_12: etree.XMLSchema
) -> None:
    """Differential check: our in-code rules and the XSD agree on what is invalid."""
    document = etree.fromstring(make())
    schema = xsd_12 if document.get("memoVersion") == "1.2" else xsd_11
    assert not schema.validate(document)


def test_the_agency_xsd_accepts_the_bases(xsd_11: etree.XMLSchema, xsd_12: etree.XMLSchema) -> None:
    assert xsd_11.validate(etree.fromstring(BASE_11.encode())), xsd_11.error_log
    assert xsd_12.validate(etree.fromstring(BASE_12.encode())), xsd_12.error_log
