"""A PDF's text, read by PDFium (pypdfium2) on the one thread of this process that may call it.

PDFium is not thread-safe, not even across documents: no two threads may be inside it at once. So
every load, page read and close of this process happens on one long-lived reader thread, one PDF
after another, and nothing else here calls PDFium. A caller waits for its PDF up to its timeout and
then takes the pages read so far; the reader checks a stop flag between pages. A single page can
still keep it inside PDFium past that (a thread cannot be stopped): it is then a straggler, and
until it comes back every further PDF of this process yields "" at once, since a second thread may
not enter PDFium beside it. `stragglers()` tells the parse worker to retire after such a letter.
pypdf reads what PDFium refuses to open, and a letter whose PDF crashed PDFium (`watch_crashes`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import io
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

THREAD_NAME = "postbud-pdf-reader"
# PDFium marks a word hyphenated at the end of a line with U+FFFE and drops that line break;
# written back as "-\n", the text reads as printed (and as pypdf gave it).
_HYPHEN_EOL = "\ufffe"
# How long a new PDF waits for a straggler that was told to stop: one that is only between two
# pages comes back within milliseconds, one stuck inside a page does not.
_STRAGGLER_GRACE_S = 0.1


class _Job:
    """One PDF for the reader. `stopped` is set by a caller that gave up on it; `done` is a lock held
    until the reader is through with it (a bare lock, not an Event: the hand-off back and forth is
    then two C calls, not a Condition's Python code around them)."""

    __slots__ = ("content", "max_chars", "pages", "stopped", "done", "pdfium")

    def __init__(self, content: bytes, max_chars: int) -> None:
        self.content = content
        self.max_chars = max_chars
        self.pages: list[str] = []
        self.stopped = False
        self.done = threading.Lock()
        self.done.acquire()
        self.pdfium = _pdfium_allowed

    def finish(self) -> None:
        self.done.release()

    def wait(self, timeout: float) -> bool:
        """Is the reader through with it within `timeout` seconds? (Any thread, any number of times.)"""
        if not self.done.acquire(timeout=max(timeout, 0.0)):  # 0: a look without waiting
            return False
        self.done.release()  # still released for the next look
        return True


class _Reader:
    """The thread that reads this process's PDFs (a new thread per PDF cost 0.6 ms of a 4.4 ms letter)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.current: _Job | None = None
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if not job.stopped:  # its caller gave up while it waited: never opened
                self.current = job
                _read(job)
                self.current = None
            job.finish()

    def straggler(self) -> _Job | None:
        """The PDF being read whose caller has already given up on it, if any."""
        job = self.current
        return job if job is not None and job.stopped else None


_reader: _Reader | None = None
_reader_lock = threading.Lock()
_pdfium_allowed = True
# Set while the reader is inside PDFium: a byte shared with the parse pool, which reads it when
# this process dies (PDFium aborts when it runs out of memory) to read the letter again with pypdf.
_crash_marker: Any = None


def watch_crashes(marker: Any) -> None:
    """Keep `marker.value` 1 while PDFium runs (a shared byte the parent reads after a crash)."""
    global _crash_marker
    _crash_marker = marker


@contextlib.contextmanager
def pypdf_only() -> Iterator[None]:
    """PDFs given to `pdf_text` inside are read by pypdf, never PDFium (a letter that crashed it)."""
    global _pdfium_allowed
    previous, _pdfium_allowed = _pdfium_allowed, False
    try:
        yield
    finally:
        _pdfium_allowed = previous


def _the_reader() -> _Reader:
    global _reader
    with _reader_lock:
        if _reader is None or not _reader.thread.is_alive():  # none yet, or this is a fork's copy
            _reader = _Reader()
        return _reader


def stragglers() -> int:
    """PDFs still being read past their deadline (their process should be replaced)."""
    reader = _reader
    return int(reader is not None and reader.thread.is_alive() and reader.straggler() is not None)


def pdf_text(content: bytes, *, max_chars: int, timeout_s: float) -> str:
    """The pages' text joined by newlines, the pages read within `timeout_s`; "" if unreadable.

    Never raises. Reading stops at the first page boundary after `max_chars` characters.
    """
    if timeout_s <= 0:
        return ""
    reader = _the_reader()
    straggler = reader.straggler()
    if straggler is not None and not straggler.wait(min(timeout_s, _STRAGGLER_GRACE_S)):
        log.warning("PDF text skipped: an earlier PDF is still inside the PDF reader past its deadline")
        return ""
    job = _Job(content, max_chars)
    started = time.monotonic()
    reader.jobs.put(job)
    if not job.wait(timeout_s):
        job.stopped = True
        log.warning("PDF text extraction stopped after %.1f s with %d page(s) read", time.monotonic() - started,
                    len(job.pages))
    # Copy under the GIL: the reader may still append one more page after the deadline.
    return "\n".join(list(job.pages))


# -- on the reader thread only -------------------------------------------------------------------


@functools.cache
def _pdfium() -> Any:
    """PDFium's raw bindings, loaded (and the library initialised) on first use; the parse workers'
    forkserver preloads them."""
    import pypdfium2.raw as pdfium

    # pypdfium2 destroys the library at interpreter exit, on the main thread: with a straggler still
    # inside PDFium that would pull the library from under it. The process's end frees it anyway.
    try:
        from pypdfium2 import _library_scope

        atexit.unregister(_library_scope.destroy_lib)
    except (ImportError, AttributeError):  # a pypdfium2 that no longer has it
        pass
    return pdfium


def _read(job: _Job) -> None:
    if not job.pdfium:
        _read_with_pypdf(job)
        return
    marker = _crash_marker
    if marker is not None:
        marker.value = 1
    try:
        _read_with_pdfium(job)
    finally:
        if marker is not None:
            marker.value = 0


def _read_with_pdfium(job: _Job) -> None:
    try:
        pdfium = _pdfium()
        # No password: PDFium tries the empty one, so only PDFs that need a real password fail here.
        document = pdfium.FPDF_LoadMemDocument64(job.content, len(job.content), None)
    except Exception as error:  # noqa: BLE001 - no text then, whatever went wrong
        log.info("PDF text extraction failed: %s", type(error).__name__)
        return
    if not document:
        if pdfium.FPDF_GetLastError() != pdfium.FPDF_ERR_PASSWORD:
            _read_with_pypdf(job)
        return
    try:
        pages = pdfium.FPDF_GetPageCount(document)
        if pages <= 0:
            _read_with_pypdf(job)
        size = 0
        for index in range(pages):
            if job.stopped or size >= job.max_chars:
                return
            text = _page_text(pdfium, document, index, job.max_chars - size)
            job.pages.append(text)
            size += len(text) + 1
    except Exception as error:  # noqa: BLE001 - e.g. MemoryError for one huge page: keep what was read
        log.info("PDF text extraction failed: %s", type(error).__name__)
    finally:
        pdfium.FPDF_CloseDocument(document)


def _read_with_pypdf(job: _Job) -> None:
    """pypdf, for a PDF whose structure PDFium refuses (it salvages text from some damaged files, e.g.
    a trailer without /Root), and for a letter whose PDF crashed PDFium (`pypdf_only`): pypdf caps
    what a stream may inflate to and raises instead of aborting the process."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(job.content), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return
        size = 0
        for page in reader.pages:
            if job.stopped or size >= job.max_chars:
                return
            text = page.extract_text() or ""
            job.pages.append(text)
            size += len(text) + 1
    except Exception as error:  # noqa: BLE001 - a hostile PDF may break pypdf in any way; no text then
        log.info("PDF text extraction failed: %s", type(error).__name__)


def _page_text(pdfium: Any, document: Any, index: int, limit: int) -> str:
    page = pdfium.FPDF_LoadPage(document, index)
    if not page:
        return ""
    try:
        textpage = pdfium.FPDFText_LoadPage(page)
        if not textpage:
            return ""
        try:
            return _text(pdfium, textpage, limit)
        finally:
            pdfium.FPDFText_ClosePage(textpage)
    finally:
        pdfium.FPDF_ClosePage(page)


def _text(pdfium: Any, textpage: Any, limit: int) -> str:
    """The page's text, at least its first `limit` characters (cut exactly by the caller)."""
    # Twice the limit: a line break is two characters here and one once normalised.
    count = min(pdfium.FPDFText_CountChars(textpage), 2 * limit + 2)
    # FPDFText_GetText may write past a buffer sized by characters when the range begins or ends
    # with characters that have no text (crbug.com/pdfium/2079): trim those, size by text indexes.
    first, last, start, end = 0, count - 1, -1, -1
    while first <= last and (start := pdfium.FPDFText_GetTextIndexFromCharIndex(textpage, first)) < 0:
        first += 1
    while first <= last and (end := pdfium.FPDFText_GetTextIndexFromCharIndex(textpage, last)) < 0:
        last -= 1
    if first > last:
        return ""
    units = max(end - start, last - first) + 2  # UTF-16 units with the terminating NUL
    buffer = (ctypes.c_ushort * units)()
    written = pdfium.FPDFText_GetText(textpage, first, last - first + 1, buffer)
    if written <= 1:
        return ""
    text = bytes(buffer)[: 2 * min(written - 1, units - 1)].decode("utf-16-le", "ignore")
    return text.replace(_HYPHEN_EOL + "\r\n", "-\n").replace(_HYPHEN_EOL, "-\n")

