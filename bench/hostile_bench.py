"""Hostile inputs through the production parse path (the watchdog's worker), with outcome, time and peak memory.

    .venv/bin/python -m bench.hostile_bench [--only NAME]

Each input runs in a fresh worker under the default letter budget (30 s, 1024 MB address space);
"worker peak" is the worker's peak resident memory (VmHWM); "daemon" how far the parent's resident
memory rose above its level before the letter was handed over (sampled every 20 ms).
The table it prints is quoted in README.md (Security).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import codecs
import logging
import os
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors import watchdog
from connectors.base import PermanentError
from connectors.files import parse_message_file
from connectors.memo import build_memo
from core.domain import Document, DocumentKind, File, MessageType, NormalizedMessage, Party

MB = 1024 * 1024


def _memo(files: tuple[File, ...], title: str = "Brev") -> bytes:
    return build_memo(NormalizedMessage(
        message_id=str(uuid.uuid4()), message_type=MessageType.DIGITALPOST, title=title,
        sender=Party("12345678", "CVR", "Kommunen"), recipient=Party("87654321", "CVR", "Firma ApS"),
        format="memo-1.1", documents=(Document(DocumentKind.MAIN, files),), sent_at=datetime.now(UTC),
    ))


def _pdf(content_stream: bytes, *, pages: int = 1, compress: bool = True) -> bytes:
    """A minimal PDF whose pages share one content stream (FlateDecode when `compress`)."""
    data = zlib.compress(content_stream, 9) if compress else content_stream
    filters = "/Filter /FlateDecode " if compress else ""
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        f"<< {filters}/Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream",
    ] + [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
         b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"] * pages
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _utf16(doctype: str) -> bytes:
    return codecs.BOM_UTF16_LE + (f'<?xml version="1.0" encoding="UTF-16"?>\n{doctype}\n<m/>').encode("utf-16-le")


def _zip_bomb() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * (200 * MB))
    return buffer.getvalue()


def _eml(headers: str, body: bytes = b"x") -> bytes:
    return headers.encode() + b"\r\n" + body


@dataclass(frozen=True)
class Case:
    name: str
    file_name: str
    make: Callable[[], bytes]


CASES = [
    Case("UTF-8 XXE (file:///etc/passwd)", "x.xml",
         lambda: b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><m>&x;</m>'),
    Case("UTF-16 DOCTYPE SYSTEM /dev/ptmx", "x.xml", lambda: _utf16('<!DOCTYPE m SYSTEM "/dev/ptmx">')),
    Case("UTF-16 DOCTYPE SYSTEM /etc/shadow", "x.xml", lambda: _utf16('<!DOCTYPE m SYSTEM "/etc/shadow">')),
    Case("billion laughs", "x.xml", lambda: (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
        + ']><l>&j;</l>').encode()),
    Case("XML nested 100,000 deep", "x.xml", lambda: b"<a>" * 100_000 + b"</a>" * 100_000),
    Case("MeMo with invalid base64", "x.xml",
         lambda: _memo((File("a.pdf", "application/pdf", b"%PDF-1.4 x"),)).replace(b"JVBERi0xLjQgeA==", b"!!!*")),
    Case("MeMo in a wrong namespace", "x.xml",
         lambda: _memo((File("a.txt", "text/plain", b"hej"),)).replace(b"https://DigitalPost.dk/MeMo-1", b"urn:x")),
    Case("MeMo 45 MB (one 33 MB PDF)", "x.xml",
         lambda: _memo((File("big.pdf", "application/pdf", _pdf(b"BT /F1 12 Tf (x) Tj ET") + b"%" * (33 * MB)),))),
    Case("MeMo over 50 MB", "x.xml", lambda: _memo((File("a.bin", "application/octet-stream", b"\0" * (40 * MB)),))),
    Case("PDF bomb (1 GB content stream, 1 MB deflated)", "x.xml",
         lambda: _memo((File("bomb.pdf", "application/pdf", _pdf(b"0 0 m " * (170 * MB))),))),
    Case("PDF with 2,000 pages of text", "x.xml", lambda: _memo((File("slow.pdf", "application/pdf", _pdf(
        b"BT /F1 8 Tf " + b" ".join(b"(%d Lorem ipsum dolor sit amet) Tj 0 -9 Td" % i for i in range(800)) + b" ET",
        pages=2000)),))),
    Case("encrypted PDF", "x.xml", lambda: _memo((File("enc.pdf", "application/pdf", _encrypted_pdf()),))),
    Case("zip bomb attachment (200 MB of zeros)", "x.xml",
         lambda: _memo((File("a.txt", "text/plain", b"hej"), File("bomb.zip", "application/zip", _zip_bomb())))),
    Case("e-mail From: ((( 300 deep", "x.eml", lambda: _eml("From: " + "(" * 300 + "\r\nSubject: x\r\n")),
    Case("e-mail MIME nested 500 deep", "x.eml", lambda: _eml("From: a@b.dk\r\n" + "".join(
        f'Content-Type: multipart/mixed; boundary="{n}"\r\n\r\n--{n}\r\n' for n in range(500)))),
    Case("e-mail with path traversal and CR/LF names", "x.eml", lambda: _eml(
        "From: a@b.dk\r\nSubject: =?utf-8?q?Moms=0D=0ABcc:_x@evil.example?=\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n',
        b'--b\r\nContent-Type: text/plain\r\n\r\nhej\r\n--b\r\nContent-Type: application/pdf\r\n'
        b'Content-Disposition: attachment; filename="../../../../tmp/x"\r\n\r\n%PDF-1.4\r\n--b--\r\n')),
    Case("e-mail with invalid base64 parts", "x.eml", lambda: _eml(
        'From: a@b.dk\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!*&&\r\n--b--\r\n")),
]


def _encrypted_pdf() -> bytes:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt("secret-user-password", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _worker_peak_kb(pid: int, field: str = "VmHWM:") -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def _run(case: Case) -> tuple[str, float, str, str, str]:
    raw = case.make()
    own = os.getpid()
    baseline = _worker_peak_kb(own, "VmRSS:") or 0
    watchdog.shutdown()  # a fresh worker per case, so its peak is this letter's
    watchdog.configure(watchdog.Budget(workers=1))
    pool = watchdog.pool()
    await pool.run(str, "warm-up")
    pids = watchdog.worker_pids()
    peaks: list[int] = []
    parent: list[int] = [baseline]

    async def sample() -> None:
        while True:
            peaks.extend(p for p in (_worker_peak_kb(pid) for pid in pids) if p is not None)
            parent.append(_worker_peak_kb(own, "VmRSS:") or 0)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    try:
        message = await watchdog.run(parse_message_file, raw, case.file_name)
        outcome = f"parsed: {len(message.documents)} document(s), {len(message.text)} characters of text"
    except PermanentError as error:
        outcome = f"quarantined: {str(error)[:90]}"
    elapsed = time.monotonic() - started
    sampler.cancel()
    peak = f"{max(peaks) / 1024:.0f} MB" if peaks else "-"
    daemon = f"+{max(0, max(parent) - baseline) / 1024:.0f} MB"
    size = f"{len(raw) / MB:.1f} MB" if len(raw) > MB else f"{len(raw)} B"
    return size, elapsed, outcome, peak, daemon


async def main(only: str | None) -> None:
    print("| input | size | outcome | time | worker peak RSS | daemon RSS |\n|---|---|---|---|---|---|")
    for case in CASES:
        if only and only.lower() not in case.name.lower():
            continue
        size, elapsed, outcome, peak, daemon = await _run(case)
        print(f"| {case.name} | {size} | {outcome} | {elapsed:.2f} s | {peak} | {daemon} |", flush=True)
    watchdog.shutdown()


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # pypdf's complaints about the hostile PDFs are expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", help="run the cases whose name contains this")
    asyncio.run(main(parser.parse_args().only))
