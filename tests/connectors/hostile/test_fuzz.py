"""Fuzzing (hypothesis, bounded for CI): the MeMo reader, the e-mail parser, PDF text and the rule
evaluator take any input and either give a result or their own typed refusal, never another exception.

More examples on demand: POSTBUD_FUZZ_EXAMPLES=5000 python -m pytest tests/connectors/hostile/test_fuzz.py
"""

from __future__ import annotations

import codecs
import os
from datetime import UTC, datetime

import pytest

# In the `test` extra; a virtualenv made before it was added skips until `make venv` runs again.
pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from connectors.email import EmailError, parse_eml
from connectors.memo import MemoError, parse_memo
from connectors.text import extract_text
from core.domain import Attention, Document, DocumentKind, File, Flags, MessageType, NormalizedMessage, Party
from rules.facts import MessageFacts
from rules.loader import load
from tests.connectors.test_memo_invalid import BASE_11
from tests.connectors.test_text import make_pdf
from tests.rules.conftest import FakeDirectory
from tests.rules.test_examples import CVR, EXAMPLES, sandbox_directory

FUZZ = settings(
    max_examples=int(os.environ.get("POSTBUD_FUZZ_EXAMPLES", "150")),
    deadline=None,  # parse time is bounded by the watchdog in production, not asserted per example here
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Text with what hostile senders send: controls, markup, entity-looking strings, non-Latin script.
HOSTILE_TEXT = st.lists(
    st.one_of(st.text(st.characters(codec="utf-8"), max_size=20),
              st.sampled_from(["<", ">", "&", "&x;", "<!DOCTYPE", "]]>", "\x1b[2J", "\r\n", "\x00", "(" * 50,
                               "=?utf-8?q?", "--b0", "\u202e"])),
    max_size=12,
).map("".join)


def _mutations() -> st.SearchStrategy[bytes]:
    """A valid MeMo with hostile text spliced in somewhere, in one of the encodings XML allows."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        text = BASE_11
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 40))
        text = text[:at] + draw(HOSTILE_TEXT) + text[at + cut:]
        encoding = draw(st.sampled_from(["utf-8", "utf-16", "utf-16-be", "utf-32", "latin-1"]))
        body = text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
        try:
            raw = body.encode(encoding)
        except UnicodeEncodeError:
            raw = body.encode("utf-8")
        return draw(st.sampled_from([b"", codecs.BOM_UTF8])) + raw if encoding == "utf-8" else raw

    return build()


@FUZZ
@given(st.one_of(st.binary(max_size=2000), _mutations()))
@example(codecs.BOM_UTF16_LE + '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE m [<!ENTITY x "y">]><m>&x;</m>'
         .encode("utf-16-le"))
def test_memo_reader_parses_or_refuses(raw: bytes) -> None:
    try:
        message = parse_memo(raw)
    except MemoError as error:
        assert str(error) and error.raw == raw
    else:
        assert isinstance(message, NormalizedMessage)


_PDF = make_pdf(["Side 1: Årsopgørelse (2025)", "Side 2: Skat å betale"])


@st.composite
def _damaged_pdfs(draw: st.DrawFn) -> bytes:
    """A valid two-page PDF with bytes overwritten, cut short or spliced in: PDFium's input, and pypdf's
    when PDFium refuses it."""
    raw = bytearray(_PDF)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(raw) - 1))
        raw[at : at + draw(st.integers(0, 8))] = draw(st.binary(max_size=8))
    return bytes(raw[: draw(st.integers(len(raw) // 2, len(raw)))])


@FUZZ
@given(_damaged_pdfs())
def test_pdf_text_is_read_or_empty(raw: bytes) -> None:
    text = extract_text(File("brev.pdf", "application/pdf", raw))
    assert isinstance(text, str) and len(text) <= 100_000


HEADER_NAMES = st.sampled_from(["From", "To", "Cc", "Subject", "Date", "Message-ID", "Content-Type",
                                "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version", "X-Any"])


@st.composite
def _emails(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HOSTILE_TEXT), min_size=1, max_size=8))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    nesting = draw(st.integers(0, 5))
    body = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in range(nesting))
    return (head + "\r\n" + body + draw(HOSTILE_TEXT)).encode("utf-8", "surrogatepass") + draw(st.binary(max_size=64))


@FUZZ
@given(st.one_of(st.binary(max_size=2000), _emails()))
@example(b"From: " + b"(" * 300 + b"\r\nSubject: deep\r\n\r\nx")  # the seeds of what was found by hand
@example(b"From: a@b.dk\r\n" + b"".join(b'Content-Type: multipart/mixed; boundary="%d"\r\n\r\n--%d\r\n' % (n, n)
                                       for n in range(500)))
def test_email_parser_parses_or_refuses(raw: bytes) -> None:
    try:
        message = parse_eml(raw)
    except EmailError as error:
        assert str(error) and error.raw == raw
    else:
        assert isinstance(message, NormalizedMessage)


_RULES = load(EXAMPLES, sandbox_directory(FakeDirectory()))
OPTIONAL = st.one_of(st.none(), HOSTILE_TEXT)


@st.composite
def _messages(draw: st.DrawFn) -> NormalizedMessage:
    files = draw(st.lists(st.tuples(HOSTILE_TEXT, st.sampled_from(["application/pdf", "text/plain", "", "x/y"])),
                          max_size=3))
    attention = draw(st.one_of(st.none(), st.builds(Attention, person_name=OPTIONAL, email=OPTIONAL,
                                                    content_responsible=OPTIONAL)))
    return NormalizedMessage(
        message_id="m", message_type=draw(st.sampled_from(list(MessageType))), title=draw(HOSTILE_TEXT),
        sender=Party(draw(OPTIONAL), draw(st.sampled_from(["CVR", "CPR", None])), draw(OPTIONAL)),
        recipient=Party(CVR, "CVR", None), format="memo-1.2", attention=attention,
        documents=(Document(DocumentKind.MAIN, tuple(File(n, t, b"x") for n, t in files)),) if files else (),
        flags=Flags(reply_allowed=draw(st.booleans())), text=draw(HOSTILE_TEXT),
    )


@FUZZ
@given(_messages(), st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_rule_evaluator_decides_or_holds(message: NormalizedMessage, received_at: datetime) -> None:
    facts = MessageFacts(message=message, organisation=CVR, mailbox="main", provider="ngdp", received_at=received_at)
    evaluation = _RULES.evaluate(facts)
    assert evaluation.action in ("route", "hold")
    assert evaluation.explanation is not None
