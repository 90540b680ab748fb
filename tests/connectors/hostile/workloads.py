"""Picklable stand-ins for hostile parses, run inside the watchdog's worker processes."""

from __future__ import annotations

import os
import time

from core.domain import NormalizedMessage


def sleep_forever(raw: bytes, name: str = "") -> NormalizedMessage:
    while True:
        time.sleep(1)


def hog_memory(megabytes: int) -> int:
    # One allocation: over the limit it fails at once, however loaded the machine is.
    return len(bytearray(megabytes * 1024 * 1024)) // (1024 * 1024)


def crash(code: int) -> None:
    os.kill(os.getpid(), 9) if code < 0 else os._exit(code)


def recurse(depth: int) -> int:
    return 0 if depth == 0 else 1 + recurse(depth - 1)


def echo(value: object) -> object:
    return value


def pid() -> int:
    return os.getpid()


def refuse(raw: bytes) -> None:
    from connectors.base import PermanentError

    raise PermanentError("not a letter", raw=raw)


def fail_for_now(reason: str) -> None:
    from connectors.base import TransientError

    raise TransientError(reason)


def stuck_or_parse(raw: bytes, name: str) -> NormalizedMessage:
    """A parser that never returns for files named *stuck*, and parses everything else as usual."""
    from connectors.files import parse_message_file

    if "stuck" in name:
        sleep_forever(raw)
    return parse_message_file(raw, name)


def pdfs_with_one_that_hangs(pdfs: list[tuple[bytes, float]]) -> tuple[list[str], int, int]:
    """Reads `pdfs` (each with its timeout) in order as one letter's files, the first page of a PDF
    holding "hostile" never coming back from the reader; returns the texts, this worker's pid and
    the number of PDF reader threads."""
    import threading

    from connectors import pdftext
    from connectors.text import extract_text
    from core.domain import File

    real = pdftext._page_text

    def page_text(pdfium: object, document: object, index: int, limit: int) -> str:
        text = real(pdfium, document, index, limit)
        if "hostile" in text:
            threading.Event().wait()
        return text

    pdftext._page_text = page_text
    texts = [extract_text(File(f"{n}.pdf", "application/pdf", pdf), timeout_s=timeout)
             for n, (pdf, timeout) in enumerate(pdfs)]
    readers = sum(1 for t in threading.enumerate() if t.name == pdftext.THREAD_NAME)
    return texts, os.getpid(), readers


def text_of_pdf_that_aborts_pdfium(pdf: bytes) -> tuple[str, int]:
    """The text of `pdf` when PDFium aborts the process on it (as it does out of memory), and the pid."""
    from connectors import pdftext
    from connectors.text import extract_text
    from core.domain import File

    def aborts(job: object) -> None:
        os.abort()

    pdftext._read_with_pdfium = aborts
    return extract_text(File("brev.pdf", "application/pdf", pdf)), os.getpid()
