"""Where a key path lives in a TOML text, so validation errors can name the line.

tomllib returns plain values without positions; this scanner reads the text line by line, tracks
table headers (`[a.b]`, `[[a]]` with their array indexes) and `key = value` lines, and maps every
key path it sees to its line. Keys inside inline tables or multi-line values fall back to the line
of their nearest known parent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")


def _split_dotted(key: str) -> list[str]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+", key)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class KeyLocator:
    """Maps key paths of one TOML text to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        array_counts: dict[KeyPath, int] = {}
        table: KeyPath = ()
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if in_multiline in line:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                names = _split_dotted(header.group(2))
                base = self._resolve(names[:-1], array_counts)
                if header.group(1) == "[[":
                    arr = base + (names[-1],)
                    index = array_counts.get(arr, -1) + 1
                    array_counts[arr] = index
                    self._lines.setdefault(arr, number)
                    table = arr + (index,)
                else:
                    table = base + (names[-1],)
                self._lines[table] = number
                continue
            key = _KEY.match(line)
            if key:
                path = table + tuple(_split_dotted(key.group(1)))
                for i in range(len(table) + 1, len(path) + 1):
                    self._lines.setdefault(path[:i], number)
                rest = line[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) == 1:
                        in_multiline = quote

    def _resolve(self, names: Sequence[str], array_counts: dict[KeyPath, int]) -> KeyPath:
        """A dotted header prefix, with the current index inserted after each array of tables."""
        path: KeyPath = ()
        for name in names:
            path = path + (name,)
            if path in array_counts:
                path = path + (array_counts[path],)
        return path

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest parent that appears in the text."""
        for end in range(len(path), 0, -1):
            found = self._lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
