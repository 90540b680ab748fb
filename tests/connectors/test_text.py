"""extract_text reads PDF, HTML and plain text, bounded in size and time, and never raises on bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest

from connectors.text import extract_text
from core.domain import File

FIXTURES = Path(__file__).parent / "fixtures"


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF, one Helvetica text line per page (WinAnsi, so Danish letters work)."""
    count = len(pages)
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: ("<< /Type /Pages /Kids [%s] /Count %d >>"
            % (" ".join(f"{4 + 2 * i} 0 R" for i in range(count)), count)).encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = b"BT /F1 12 Tf 72 720 Td (" + escaped.encode("cp1252") + b") Tj ET"
        objects[4 + 2 * i] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        ).encode()
        objects[5 + 2 * i] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number in sorted(objects):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf(content: bytes, name: str = "brev.pdf", media_type: str = "application/pdf") -> File:
    return File(name, media_type, content)


def test_pdf_pages_are_read_in_order() -> None:
    text = extract_text(pdf(make_pdf(["Side 1: Årsopgørelse (2025)", "Side 2: Skat å betale"])))
    assert text == "Side 1: Årsopgørelse (2025)\nSide 2: Skat å betale"


def test_fixture_letter_pdf() -> None:
    text = extract_text(pdf((FIXTURES / "letter.pdf").read_bytes()))
    assert text.startswith("Faktura 2026-117 fra Skattestyrelsen\n")
    assert "Ærø" in text


def test_pdf_is_cut_at_max_chars() -> None:
    text = extract_text(pdf(make_pdf([f"Side {n} " + "x" * 50 for n in range(200)])), max_chars=120)
    assert len(text) == 120 and text.startswith("Side 0 ")


def test_generic_media_type_falls_back_to_the_file_name() -> None:
    assert extract_text(pdf(make_pdf(["Hej"]), "scan.PDF", "application/octet-stream")) == "Hej"
    assert extract_text(File("note.txt", "application/octet-stream", b"note")) == "note"


@pytest.mark.parametrize("content", [
    b"This is a test",
    b"%PDF-1.4\n" + b"\x00" * 100,
    make_pdf(["ok"])[:150],
    b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj trailer << /Root 1 0 R >>",
])
def test_broken_pdf_yields_no_text_and_does_not_raise(content: bytes) -> None:
    assert extract_text(pdf(content)) == ""


def test_encrypted_pdf_with_unknown_password_yields_no_text() -> None:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(["hemmelig"]))))
    writer.encrypt(user_password="kodeord", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    assert extract_text(pdf(out.getvalue())) == ""


def test_html_drops_scripts_and_styles_and_keeps_paragraphs() -> None:
    html = (b"<html><head><title>T</title><style>p {color: red}</style></head><body>"
            b"<script>alert('x')</script><h1>Rykker</h1><p>Bel&oslash;b:&nbsp;1.200 kr.</p>"
            b"<noscript>aktiver js</noscript><div>Betal <b>nu</b></div></body></html>")
    assert extract_text(File("a.html", "text/html; charset=utf-8", html)) == "Rykker\nBeløb: 1.200 kr.\nBetal nu"


def test_html_is_bounded() -> None:
    html = ("<p>" + "ord " * 100_000 + "</p>").encode()
    assert len(extract_text(File("a.html", "text/html", html), max_chars=1000)) == 1000


@pytest.mark.parametrize(("content", "media_type", "expected"), [
    ("Kære Ærø".encode(), "text/plain", "Kære Ærø"),
    (b"\xef\xbb\xbfmed BOM", "text/plain", "med BOM"),
    ("Kære Ærø – €".encode("cp1252"), "text/plain", "Kære Ærø – €"),
    (b"\x81\xe6", "text/plain", "\x81æ"),  # not cp1252 either: latin-1 always decodes
    ("Grüße".encode("iso-8859-1"), "text/plain; charset=iso-8859-1", "Grüße"),
    ("ø".encode(), "text/plain; charset=bogus", "ø"),
])
def test_plain_text_decoding(content: bytes, media_type: str, expected: str) -> None:
    assert extract_text(File("a.txt", media_type, content)) == expected


def test_plain_text_is_cut_at_max_chars() -> None:
    assert extract_text(File("a.txt", "text/plain", b"a" * 500), max_chars=10) == "a" * 10


@pytest.mark.parametrize("media_type", ["application/msword", "image/png", "text/xml", "application/zip"])
def test_other_types_yield_nothing(media_type: str) -> None:
    assert extract_text(File("x", media_type, b"text that is not read")) == ""
