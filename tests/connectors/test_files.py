"""parse_message_file picks the parser by file suffix."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import PermanentError
from connectors.email import EmailError
from connectors.files import parse_message_file
from connectors.memo import MemoError

FIXTURES = Path(__file__).parent / "fixtures"
MEMO = """<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2">
<memo:MessageHeader><memo:messageType>NEMSMS</memo:messageType>
<memo:messageUUID>fcdcf318-59b6-427c-9879-4f0af833d593</memo:messageUUID><memo:label>Kort besked</memo:label>
<memo:notification>Husk mødet</memo:notification>
<memo:Sender><memo:senderID>12345678</memo:senderID><memo:idType>CVR</memo:idType><memo:label>K</memo:label>
</memo:Sender><memo:Recipient><memo:recipientID>87654321</memo:recipientID><memo:idType>CVR</memo:idType>
</memo:Recipient></memo:MessageHeader></memo:Message>""".encode()


@pytest.mark.parametrize("name", ["besked.xml", "BESKED.XML", "/srv/inbox/2026/besked.xml"])
def test_xml_is_memo(name: str) -> None:
    msg = parse_message_file(MEMO, name)
    assert msg.format == "memo-1.2" and msg.text == "Husk mødet"


@pytest.mark.parametrize("name", ["mail.eml", "Mail.EML"])
def test_eml_is_email(name: str) -> None:
    msg = parse_message_file((FIXTURES / "plain_text.eml").read_bytes(), name)
    assert msg.format == "eml" and msg.message_id == "rykker-4711@leverandoer.dk"


@pytest.mark.parametrize("name", ["brev.pdf", "README", "mail.eml.txt", "x.msg"])
def test_other_suffixes_are_unsupported(name: str) -> None:
    with pytest.raises(PermanentError, match="unsupported file type") as caught:
        parse_message_file(MEMO, name)
    assert caught.value.raw == MEMO


def test_parser_errors_keep_their_type() -> None:
    with pytest.raises(MemoError):
        parse_message_file(b"<not-memo/>", "a.xml")
    with pytest.raises(EmailError):
        parse_message_file(b"", "a.eml")
