"""The PDF reader: PDFium on one thread per process, stopped between pages at the deadline, bounded by
max_chars, never two threads inside PDFium, pypdf only for PDFs whose structure PDFium refuses."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pypdf
import pytest
from fpdf import FPDF

from connectors import pdftext
from connectors.text import extract_text
from core.domain import File
from tests.connectors.test_text import make_pdf, pdf

_real_page_text = pdftext._page_text


def _wait_until_idle() -> None:
    """Until the reader has no PDF in hand (another test's hanging page, let go)."""
    deadline = time.monotonic() + 10
    while (reader := pdftext._reader) is not None and reader.current is not None and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def idle_reader() -> Iterator[None]:
    _wait_until_idle()
    # PDFium loaded and the reader running before the test's own deadlines start (a loaded machine)
    assert extract_text(pdf(make_pdf(["klar"]))) == "klar"
    yield
    _wait_until_idle()


def hang_on(page: int, release: threading.Event, *, before: Callable[[], None] = lambda: None) -> Any:
    """A `_page_text` that hangs on page `page` (0-based) until `release`: a hostile page."""

    def page_text(pdfium: Any, document: Any, index: int, limit: int) -> str:
        before()
        if index == page:
            release.wait(10)
        return _real_page_text(pdfium, document, index, limit)

    return page_text


def test_a_slow_pdf_returns_the_pages_read_before_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(pdftext, "_page_text", hang_on(2, release))
    try:
        text = extract_text(pdf(make_pdf([f"Side {n}" for n in range(1, 6)])), timeout_s=0.5)
    finally:
        release.set()
    assert text == "Side 1\nSide 2"


def test_a_long_pdf_stops_between_pages_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN 200 pages that each take a while (none hangs)
    monkeypatch.setattr(pdftext, "_page_text", hang_on(-1, threading.Event(), before=lambda: time.sleep(0.02)))
    # WHEN the deadline passes while it is read
    text = extract_text(pdf(make_pdf([f"Side {n}" for n in range(1, 201)])), timeout_s=0.3)
    # THEN the caller has the first pages, and the reader stops at the next page boundary: no straggler
    lines = text.splitlines()
    assert 1 <= len(lines) < 200 and lines == [f"Side {n}" for n in range(1, len(lines) + 1)]
    _wait_until_idle()
    assert pdftext.stragglers() == 0
    assert extract_text(pdf(make_pdf(["Brev"]))) == "Brev"


def test_reading_stops_at_the_first_page_past_max_chars(monkeypatch: pytest.MonkeyPatch) -> None:
    pages: list[int] = []
    monkeypatch.setattr(pdftext, "_page_text", hang_on(-1, threading.Event(), before=lambda: pages.append(1)))
    text = extract_text(pdf(make_pdf([f"Side {n} " + "x" * 50 for n in range(200)])), max_chars=120)
    assert len(text) == 120
    assert len(pages) == 3  # 57 + 57 + 57 characters: the third page crosses 120, the fourth is never opened


def _encrypted(user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(["hemmelig"]))))
    writer.encrypt(user_password=user_password, owner_password="ejerens-kodeord", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_an_encrypted_pdf_is_read_only_with_the_empty_password() -> None:
    assert extract_text(pdf(_encrypted(""))) == "hemmelig"  # protected against editing only
    assert extract_text(pdf(_encrypted("kodeord"))) == ""


def test_a_pdf_whose_structure_pdfium_refuses_is_read_by_pypdf() -> None:
    # A trailer without /Root: PDFium does not open it, pypdf finds the catalogue by scanning.
    damaged = make_pdf(["Side 1", "Side 2"]).replace(b"/Root 1 0 R", b"")
    assert extract_text(pdf(damaged)) == "Side 1\nSide 2"


def test_a_word_hyphenated_at_the_end_of_a_line_reads_as_printed() -> None:
    letter = FPDF()
    letter.add_page()
    letter.set_font("Helvetica", size=11)
    for n, line in enumerate(["Kontakt os om moms-", "indberetningen senest fredag.", "CVR-nummer 12345678"]):
        letter.text(20, 20 + 6 * n, line)
    text = extract_text(pdf(bytes(letter.output())))
    assert text == "Kontakt os om moms-\nindberetningen senest fredag.\nCVR-nummer 12345678"


def test_pdfs_of_several_threads_are_read_one_at_a_time_by_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN two or more letters' PDFs read at once by threads of one process
    real_read = pdftext._read
    guard = threading.Lock()
    inside = 0
    most = 0
    readers: set[int] = set()

    def counted(job: Any) -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
            readers.add(threading.get_ident())
        try:
            real_read(job)
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr(pdftext, "_read", counted)
    results: dict[tuple[int, int], str] = {}

    def letters(worker: int) -> None:
        for n in range(25):
            results[worker, n] = extract_text(pdf(make_pdf([f"Brev {worker}-{n}", "Side 2"])))

    threads = [threading.Thread(target=letters, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN every PDF is read whole, by one thread, never two inside PDFium at once
    assert results == {(w, n): f"Brev {w}-{n}\nSide 2" for w in range(4) for n in range(25)}
    assert most == 1 and len(readers) == 1


def test_while_a_pdf_hangs_inside_the_reader_no_other_pdf_enters_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert extract_text(pdf(make_pdf(["Brev 1"]))) == "Brev 1"
    reader = pdftext._reader
    assert reader is not None and pdftext.stragglers() == 0
    # WHEN a PDF hangs inside a page past its deadline
    release = threading.Event()
    monkeypatch.setattr(pdftext, "_page_text", hang_on(0, release))
    try:
        assert extract_text(pdf(make_pdf(["hostile"])), timeout_s=0.2) == ""
        # THEN it is a straggler (the parse worker retires after this letter), and further PDFs yield
        # nothing at once instead of a second thread entering the PDF reader beside it
        assert pdftext.stragglers() == 1
        assert extract_text(pdf(make_pdf(["Brev 2"]))) == ""
        assert [t for t in threading.enumerate() if t.name == pdftext.THREAD_NAME] == [reader.thread]
    finally:
        release.set()
    # AND once the hanging page comes back, the same reader reads the next PDF
    _wait_until_idle()
    monkeypatch.setattr(pdftext, "_page_text", _real_page_text)
    assert pdftext.stragglers() == 0
    assert extract_text(pdf(make_pdf(["Brev 3"]))) == "Brev 3"
    assert pdftext._reader is reader


def test_a_caller_that_gave_up_while_waiting_its_turn_leaves_its_pdf_unopened(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    opened: list[bytes] = []
    real_read = pdftext._read
    monkeypatch.setattr(pdftext, "_page_text", hang_on(0, release))

    def recording(job: Any) -> None:
        opened.append(job.content)
        real_read(job)

    monkeypatch.setattr(pdftext, "_read", recording)
    slow = threading.Thread(target=extract_text, args=(pdf(make_pdf(["langsom"])),), kwargs={"timeout_s": 5})
    slow.start()
    while not opened:
        time.sleep(0.01)
    waiting = make_pdf(["venter"])
    try:
        assert extract_text(pdf(waiting), timeout_s=0.2) == ""  # queued behind the slow one, gave up
    finally:
        release.set()
        slow.join(10)
    _wait_until_idle()
    assert waiting not in opened


def test_pdf_text_is_never_raised_from_damaged_files() -> None:
    original = make_pdf(["Side 1: Årsopgørelse", "Side 2"])
    for cut in range(0, len(original), 37):
        for damaged in (original[:cut], original[:cut] + b"\xff" * 7 + original[cut + 7 :]):
            assert isinstance(extract_text(pdf(damaged)), str)

