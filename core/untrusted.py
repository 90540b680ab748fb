"""Text a sender controls, made safe to show in a terminal, to put in a header line, or to use as a file name."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

# C0 controls (ESC starts terminal sequences, CR/LF forge lines), DEL, C1 controls (0x9b is an 8-bit
# CSI), line/paragraph separators, and bidi overrides that reorder what a person reads.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
_UNSAFE_IN_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f-\x9f]')
_RESERVED_NAMES = frozenset({"con", "prn", "aux", "nul", *(f"com{n}" for n in range(1, 10)),
                             *(f"lpt{n}" for n in range(1, 10))})


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, newlines: bool = False) -> str:
    """`text` with every control character written out (ESC as ``\\x1b``), so a terminal shows it
    instead of obeying it. With `newlines`, line breaks stay (for multi-line text such as a body)."""
    pattern = _CONTROL_BUT_NEWLINE if newlines else _CONTROL
    return pattern.sub(_shown, text.replace("\r\n", "\n") if newlines else text)


def one_line(text: str, *, limit: int = 998) -> str:
    """`text` as one header-safe line: control characters and line breaks become spaces, runs of
    white space one space, at most `limit` characters (RFC 5322's line length)."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()[:limit]


def safe_filename(name: str, *, default: str = "document", limit: int = 150) -> str:
    """A base name that stays in the folder it is written to: no path (POSIX or Windows), no
    control or reserved characters, no leading dots, not a device name, at most `limit` characters
    (the extension kept)."""
    base = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name
    base = unicodedata.normalize("NFC", _UNSAFE_IN_NAME.sub("_", one_line(base)))
    base = base.strip(" .")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    if not stem or stem.lower() in _RESERVED_NAMES:
        stem = f"{stem}_{default}" if stem else default
    suffix = suffix[:16]
    stem = stem[: max(1, limit - len(suffix) - 1)]
    return f"{stem}.{suffix}" if suffix else stem
