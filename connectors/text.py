"""Bounded text extraction from a message's files (PDF, HTML, plain text) for rules and the model."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import PurePosixPath

from connectors.pdftext import pdf_text, stragglers
from core.domain import File

log = logging.getLogger(__name__)

_SUFFIX_TYPES = {".pdf": "application/pdf", ".txt": "text/plain", ".html": "text/html", ".htm": "text/html"}
_SKIPPED_TAGS = frozenset({"script", "style", "template", "noscript", "head", "svg", "object", "iframe"})
_BLOCK_TAGS = frozenset({
    "p", "br", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "ul", "ol", "section", "article", "blockquote", "pre", "hr", "title",
})

__all__ = ["extract_text", "letter_deadline", "stragglers"]

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
        # Readers accept the header anywhere in the first KiB; without one it is not a PDF at all.
        text = pdf_text(file.content, max_chars=max_chars, timeout_s=timeout_s) if b"%PDF-" in file.content[:1024] else ""
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
