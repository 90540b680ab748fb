"""No DTD of any kind reaches libxml2, in any encoding XML allows: refused fast, nothing opened."""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.eboks.xmlparse import XmlError, XmlProblem
from connectors.eboks.xmlparse import parse as parse_eboks
from connectors.memo import MemoError, parse_memo

BODY = """<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.1">
<memo:MessageHeader><memo:label>&x;</memo:label></memo:MessageHeader></memo:Message>"""

# (python codec, BOM, name in the declaration)
ENCODINGS = [
    pytest.param("utf-8", b"", "UTF-8", id="utf-8"),
    pytest.param("utf-8", codecs.BOM_UTF8, "UTF-8", id="utf-8-bom"),
    pytest.param("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16", id="utf-16le-bom"),
    pytest.param("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16", id="utf-16be-bom"),
    pytest.param("utf-16-le", b"", "UTF-16", id="utf-16le"),
    pytest.param("utf-16-be", b"", "UTF-16", id="utf-16be"),
    pytest.param("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32", id="utf-32le-bom"),
    pytest.param("utf-32-be", b"", "UTF-32", id="utf-32be"),
    pytest.param("iso-8859-1", b"", "ISO-8859-1", id="iso-8859-1"),
    pytest.param("cp1252", b"", "windows-1252", id="windows-1252"),
    pytest.param("ascii", b"", "US-ASCII", id="us-ascii"),
]


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with no writer: a parser that opens it blocks, which the test sees as a hang."""
    path = tmp_path / "dtd.fifo"
    os.mkfifo(path)
    yield path
    # Release a parser thread stuck on it (old code) so it does not outlive the test.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


def _document(doctype: str, codec: str, bom: bytes, declared: str) -> bytes:
    text = f'<?xml version="1.0" encoding="{declared}"?>\n{doctype}\n{BODY}'
    return bom + text.encode(codec)


def _refused_within(parse: Callable[[bytes], object], raw: bytes, seconds: float = 5.0) -> BaseException:
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(parse(raw))
        except BaseException as error:  # noqa: BLE001 - the outcome under test
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the parser blocked: it opened the DTD"
    assert time.monotonic() - started < seconds
    (result,) = outcome
    assert isinstance(result, BaseException), f"parsed instead of refused: {result!r}"
    return result


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS)
def test_external_dtd_on_a_fifo_is_refused_without_opening_it(
    fifo: Path, codec: str, bom: bytes, declared: str
) -> None:
    raw = _document(f'<!DOCTYPE memo:Message SYSTEM "{fifo}">', codec, bom, declared)
    error = _refused_within(parse_memo, raw)
    assert isinstance(error, MemoError)
    assert "DOCTYPE" in str(error)


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS)
@pytest.mark.parametrize("target", ["/dev/ptmx", "/etc/shadow"])
def test_system_device_and_secret_files_are_refused_fast(codec: str, bom: bytes, declared: str, target: str) -> None:
    for doctype in (f'<!DOCTYPE m SYSTEM "{target}">', f'<!DOCTYPE m [<!ENTITY x SYSTEM "file://{target}">]>'):
        error = _refused_within(parse_memo, _document(doctype, codec, bom, declared), seconds=2.0)
        assert isinstance(error, MemoError)


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS)
def test_internal_entities_are_refused(codec: str, bom: bytes, declared: str) -> None:
    laughs = '<!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY x "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    error = _refused_within(parse_memo, _document(laughs, codec, bom, declared))
    assert isinstance(error, MemoError)


def test_secret_file_contents_never_reach_the_message(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-SHADOW", encoding="utf-8")
    raw = codecs.BOM_UTF16_LE + _document(
        f'<!DOCTYPE m [<!ENTITY x SYSTEM "file://{secret}">]>', "utf-16-le", b"", "UTF-16")
    with pytest.raises(MemoError) as caught:
        parse_memo(raw)
    assert "TOP-SECRET" not in str(caught.value)


def test_encoding_tricks_are_refused_not_guessed() -> None:
    # UTF-7 would hide "<!DOCTYPE" as "+ADw-!DOCTYPE" from any ASCII look.
    utf7 = b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE m SYSTEM +ACI-/dev/ptmx+ACI-+AD4-' + BODY.encode()
    _refused_within(parse_memo, utf7)
    # A UTF-16 document that declares Latin-1 contradicts itself.
    lying = codecs.BOM_UTF16_LE + '<?xml version="1.0" encoding="ISO-8859-1"?><m/>'.encode("utf-16-le")
    with pytest.raises(MemoError, match="does not match"):
        parse_memo(lying)


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS)
def test_eboks_bodies_refuse_dtds_in_every_encoding(fifo: Path, codec: str, bom: bytes, declared: str) -> None:
    raw = _document(f'<!DOCTYPE Messages SYSTEM "{fifo}">', codec, bom, declared)
    error = _refused_within(lambda body: parse_eboks(body, f"application/xml; charset={declared}"), raw)
    assert isinstance(error, XmlError) and error.kind is XmlProblem.UNSAFE
