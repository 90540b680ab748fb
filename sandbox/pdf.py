"""Renders a sandbox letter as a small, deterministic PDF whose text pypdf can extract."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime

from fpdf import FPDF

# A fixed creation date keeps the bytes a pure function of the text (the generator is seeded).
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_LEFT = 20.0
_BOTTOM = 270.0
# Characters per line for 11 pt Helvetica across 170 mm: our own wrapping is ~10x faster than
# fpdf2's measured line breaking, which matters when the sandbox renders thousands of letters.
_WRAP = 85


class _Letter:
    def __init__(self, title: str) -> None:
        self.pdf = FPDF(format="A4")
        self.pdf.set_creation_date(_EPOCH)
        self.pdf.set_producer("postbud sandbox")
        self.pdf.set_title(_latin1(title))
        self.pdf.add_page()
        self.y = 25.0

    def lines(self, lines: Sequence[str], *, size: float = 11, bold: bool = False,
              step: float = 6.0, gap: float = 0.0) -> None:
        self.pdf.set_font("Helvetica", "B" if bold else "", size)
        for text in lines:
            for line in textwrap.wrap(_latin1(text), _WRAP) or [""]:
                if self.y > _BOTTOM:
                    self.pdf.add_page()
                    self.y = 25.0
                self.pdf.text(_LEFT, self.y, line)
                self.y += step
            self.y += gap


def render_letter(*, letterhead: Sequence[str], recipient: Sequence[str], title: str,
                  paragraphs: Sequence[str], closing: Sequence[str]) -> bytes:
    """An A4 letter: letterhead, recipient block, bold title, body paragraphs, closing."""
    letter = _Letter(title)
    letter.lines(letterhead[:1], size=13, bold=True, step=7)
    letter.lines(letterhead[1:], size=9, step=5)
    letter.y += 8
    letter.lines(recipient)
    letter.y += 8
    letter.lines((title,), size=12, bold=True, step=7, gap=3)
    letter.lines(paragraphs, gap=3)
    letter.y += 4
    letter.lines(closing)
    return bytes(letter.pdf.output())


def _latin1(text: str) -> str:
    """The core PDF fonts cover Latin-1 only; anything else becomes '?' rather than failing."""
    return text.encode("latin-1", "replace").decode("latin-1")
