"""Bounded text extraction from a message's files (PDF, HTML, plain text) for rules and the model."""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath

from core.domain import File

log = logging.getLogger(__name__)

_SUFFIX_TYPES = {".pdf": "application/pdf", ".txt": "text/plain", ".html": "text/html", ".htm": "text/html"}
_SKIPPED_TAGS = frozenset({"script", "style", "template", "noscript", "head", "svg", "object", "iframe"})
_BLOCK_TAGS = frozenset({
    "p", "br", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "ul", "ol", "section", "article", "blockquote", "pre", "hr", "title",
})


_THREAD_NAME = "postbud-pdf-text"
# One deadline for all of a letter's files (set by the parse watchdog); files are tried one after
# another, so per-file timeouts alone would add up.
_deadline: float | None = None


@contextlib.contextmanager
def letter_deadline(seconds: float) -> Iterator[None]:
    """Every `extract_text` call inside shares `seconds` in total (this thread's process only)."""
    global _deadline
    previous, _deadline = _deadline, time.monotonic() + seconds if seconds > 0 else None
    try:
        yield
    finally:
        _deadline = previous


def stragglers() -> int:
    """PDF reader threads still running past their deadline (their process should be replaced)."""
    return sum(1 for t in threading.enumerate() if t.name == _THREAD_NAME and t.is_alive())


def extract_text(file: File, *, max_chars: int = 100_000, timeout_s: float = 10.0) -> str:
    """The readable text of `file`, at most `max_chars` characters; "" for types it cannot read.

    Never raises on hostile or broken content: a PDF that does not parse yields "", and one that
    takes longer than `timeout_s` (or the rest of the letter's deadline) yields the text of the
    pages read before it.
    """
    media_type, charset = _media_type(file)
    if media_type == "application/pdf":
        if _deadline is not None:
            timeout_s = max(0.0, min(timeout_s, _deadline - time.monotonic()))
        text = _pdf_text(file.content, max_chars=max_chars, timeout_s=timeout_s)
    elif media_type == "text/html":
        text = _html_text(_decode(file.content, charset), max_chars=max_chars)
    elif media_type == "text/plain":
        text = _decode(file.content, charset)
    else:
        return ""
    # One line-ending convention, so rules can match across lines whatever system wrote the file.
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()[:max_chars]


def _media_type(file: File) -> tuple[str, str | None]:
    main, _, params = file.media_type.partition(";")
    media_type = main.strip().lower()
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    if media_type in ("", "application/octet-stream", "binary/octet-stream"):
        # Mail clients often label attachments generically; the file name is then the best evidence.
        media_type = _SUFFIX_TYPES.get(PurePosixPath(file.name).suffix.lower(), media_type)
    return media_type, charset


def _decode(content: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else UTF-8 (BOM allowed), else cp1252, else latin-1."""
    for encoding in (charset, "utf-8-sig", "cp1252"):
        if encoding is None:
            continue
        try:
            return content.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return content.decode("latin-1")  # total: every byte is a character


class _TextCollector(HTMLParser):
    """Collects visible text; drops script/style and the like, breaks lines at block elements."""

    def __init__(self, max_chars: int) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.max_chars = max_chars
        self._skip_depth = 0

    @property
    def full(self) -> bool:
        return self.size >= self.max_chars

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self._add("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._add("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._add("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self._add(data)

    def _add(self, text: str) -> None:
        if not self.full:
            self.parts.append(text)
            self.size += len(text)


def _html_text(html: str, *, max_chars: int) -> str:
    collector = _TextCollector(max_chars)
    chunk = 64 * 1024
    for start in range(0, len(html), chunk):
        collector.feed(html[start : start + chunk])
        if collector.full:
            break
    else:
        collector.close()
    lines = (" ".join(line.split()) for line in "".join(collector.parts).splitlines())
    return "\n".join(line for line in lines if line)


@dataclass
class _Job:
    content: bytes
    max_chars: int
    pages: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class _Reader:
    """One long-lived thread that reads PDFs one after another (a new thread per PDF cost 0.6 ms of a
    4.4 ms letter). A reader whose PDF overran is let go: renamed a straggler, it ends after that PDF."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="postbud-pdf-reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            _read_pdf_pages(job.content, job.pages, job.stop, job.max_chars)
            job.done.set()

    def let_go(self) -> None:
        self.thread.name = _THREAD_NAME
        self.jobs.put(None)


_reader: _Reader | None = None
_reader_lock = threading.Lock()


def _pdf_text(content: bytes, *, max_chars: int, timeout_s: float) -> str:
    """Read pages in a reader thread; past the deadline, return the pages read so far.

    A thread cannot be killed, so the reader also checks a stop flag between pages: a slow PDF
    stops at the next page boundary, and only a single pathological page can outlive the call.
    """
    global _reader
    if b"%PDF-" not in content[:1024] or timeout_s <= 0:
        return ""  # not a PDF at all (readers accept the header anywhere in the first KiB)
    job = _Job(content, max_chars)
    started = time.monotonic()
    if _reader_lock.acquire(blocking=False):
        try:
            if _reader is None or not _reader.thread.is_alive():
                _reader = _Reader()
            _reader.jobs.put(job)
            finished = job.done.wait(timeout_s)
            if not finished:
                _reader.let_go()  # the next PDF gets a new reader
                _reader = None
        finally:
            _reader_lock.release()
    else:  # another thread of this process is reading one: this one gets a thread of its own
        worker = threading.Thread(target=_read_pdf_pages, args=(content, job.pages, job.stop, max_chars),
                                  name=_THREAD_NAME, daemon=True)
        worker.start()
        worker.join(timeout_s)
        finished = not worker.is_alive()
    if not finished:
        job.stop.set()
        log.warning("PDF text extraction stopped after %.1f s with %d page(s) read", time.monotonic() - started,
                    len(job.pages))
    # Copy under the GIL: the reader may still append one more page after the deadline.
    return "\n".join(list(job.pages))


def _read_pdf_pages(content: bytes, pages: list[str], stop: threading.Event, max_chars: int) -> None:
    # Imported here so that modules which never see a PDF do not pay for pypdf.
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return
        size = 0
        for page in reader.pages:
            if stop.is_set() or size >= max_chars:
                return
            text = page.extract_text() or ""
            pages.append(text)
            size += len(text) + 1
    except Exception as error:  # noqa: BLE001 - a hostile PDF may break pypdf in any way; no text then
        log.info("PDF text extraction failed: %s", type(error).__name__)
