"""PDF text per PDF, PDFium (the reader) against pypdf (its fallback), and a parse worker's CPU per letter.

For each PDF of a small corpus (the e2e benchmark's letter, sandbox letters, the test fixture, a
Unicode TrueType letter, and any PDFs under /usr/share/doc): CPU ms per read with each engine, and
whether the text (normalised as extract_text does) is the same, with the first differing lines.
Then N e2e letters through one parse worker (`watchdog.ParsePool`), its CPU ms per letter:

    .venv/bin/python -m bench.pdf_text_bench [--letters 1000] [--diff-lines 6]
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import process_cpu  # noqa: E402
from bench.e2e_letters import letter  # noqa: E402
from connectors import pdftext, watchdog  # noqa: E402
from connectors.files import parse_message_file  # noqa: E402
from connectors.memo import parse_memo  # noqa: E402
from sandbox.generator import generate  # noqa: E402

_UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")


def corpus() -> list[tuple[str, bytes]]:
    pdfs = [("e2e letter (fpdf2, Helvetica)", parse_memo(letter("12345678", 1)).documents[0].files[0].content)]
    for n, message in enumerate(generate("12345678", 3)):
        pdfs += [(f"sandbox {n}: {f.name[:28]}", f.content) for d in message.documents for f in d.files
                 if f.content.startswith(b"%PDF-")]
    pdfs.append(("tests fixture letter.pdf", (ROOT / "tests/connectors/fixtures/letter.pdf").read_bytes()))
    if _UNICODE_FONT.exists():
        pdfs.append(("fpdf2 DejaVu TrueType, ligature, spaces", _unicode_letter()))
    pdfs += [(path.name, path.read_bytes()) for path in sorted(Path("/usr/share/doc").rglob("*.pdf"))[:4]]
    return pdfs


def _unicode_letter() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("dejavu", "", str(_UNICODE_FONT))
    pdf.add_page()
    pdf.set_font("dejavu", size=11)
    pdf.multi_cell(0, 6, "Kære Søren Østergaard – beløbet er 1.200,00 € inkl. moms.\n"
                         "Afgørelse om ﬁnansiering, “citat”. Linje med    flere   mellemrum.")
    return bytes(pdf.output())


def _engine(read: Callable[[pdftext._Job], None]) -> Callable[[bytes], str]:
    def text(content: bytes) -> str:
        job = pdftext._Job(content, 100_000)
        read(job)
        joined = "\n".join(job.pages)
        return joined.replace("\r\n", "\n").replace("\r", "\n").strip()[:100_000]

    return text


def _cpu_ms(read: Callable[[bytes], str], content: bytes) -> float:
    rounds, spent = 0, 0.0
    started = time.process_time()
    while rounds < 3 or (spent < 0.3 and rounds < 200):
        read(content)
        rounds += 1
        spent = time.process_time() - started
    return 1000 * spent / rounds


def per_pdf(diff_lines: int) -> None:
    pdfium, pypdf = _engine(pdftext._read_with_pdfium), _engine(pdftext._read_with_pypdf)
    print("| PDF | size | PDFium ms | pypdf ms | text |\n|---|---|---|---|---|")
    differences: list[str] = []
    for name, content in corpus():
        a, b = pdfium(content), pypdf(content)
        same = "same" if a == b else f"differs ({len(a)} vs {len(b)} chars)"
        print(f"| {name} | {len(content):,} B | {_cpu_ms(pdfium, content):.2f} | {_cpu_ms(pypdf, content):.2f} | {same} |")
        if a != b:
            diff = difflib.unified_diff(b.splitlines(), a.splitlines(), "pypdf", "PDFium", n=0, lineterm="")
            differences += [f"{name}:"] + [f"    {line[:110]!r}" for line in list(diff)[2:][:diff_lines]]
    print("\n".join(differences))


async def per_letter(letters: int) -> None:
    raws = [letter("12345678", n) for n in range(letters)]
    watchdog.configure(watchdog.Budget(workers=1))
    pool = watchdog.pool()
    await pool.run(parse_message_file, raws[0], "warm-up.xml")
    (pid,) = watchdog.worker_pids()
    before = process_cpu(pid)
    for raw in raws:
        await pool.run(parse_message_file, raw, "letter.xml")
    spent = process_cpu(pid) - before
    watchdog.shutdown()
    print(f"\nparse worker: {letters} e2e letters, {1000 * spent / letters:.2f} ms CPU per letter "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letters", type=int, default=1000)
    parser.add_argument("--diff-lines", type=int, default=6)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # pypdf's complaints about the system PDFs
    per_pdf(args.diff_lines)
    asyncio.run(per_letter(args.letters))


if __name__ == "__main__":
    main()
