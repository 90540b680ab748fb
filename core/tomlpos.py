"""Source positions of the keys and values of a TOML document, which tomllib does not report.

One helper for every TOML file postbud reads (the config, the rules, the recipients file).

`locate(text)` scans a document that tomllib has already accepted and maps each key path to the
1-based (line, column) of the key and of its value. A path is a tuple of table keys and array indices,
so the `id` in the second `[[rule]]` block's `when.sender.id = [...]` is `("rule", 1, "when",
"sender", "id")` and that array's first element is the same path plus `0`. Because the input is known
to be valid TOML, the scanner can be lenient: it only has to find where things start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Path = tuple[str | int, ...]
Pos = tuple[int, int]

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_VALUE_END = frozenset(",]}#\n")


@dataclass
class Positions:
    """Where each key path was written (`keys`) and where its value starts (`values`)."""

    keys: dict[Path, Pos] = field(default_factory=dict)
    values: dict[Path, Pos] = field(default_factory=dict)

    def key(self, path: Path) -> Pos:
        """The position of `path`'s key, or of its nearest located ancestor (1, 1 as a last resort)."""
        return _nearest(self.keys, path)

    def value(self, path: Path) -> Pos:
        """The position of `path`'s value (or key), else of its nearest located ancestor's value."""
        while path:
            if path in self.values:
                return self.values[path]
            if path in self.keys:
                return self.keys[path]
            path = path[:-1]
        return (1, 1)


def _nearest(table: dict[Path, Pos], path: Path) -> Pos:
    while path:
        if path in table:
            return table[path]
        path = path[:-1]
    return (1, 1)


class _Scanner:
    """A cursor over the text that tracks line and column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line_starts = [0]
        for n, ch in enumerate(text):
            if ch == "\n":
                self.line_starts.append(n + 1)
        self.out = Positions()
        self.array_counts: dict[Path, int] = {}

    def pos(self, i: int | None = None) -> Pos:
        at = self.i if i is None else i
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:  # binary search for the line containing offset `at`
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= at:
                lo = mid
            else:
                hi = mid - 1
        return (lo + 1, at - self.line_starts[lo] + 1)

    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.text[j] if j < len(self.text) else ""

    def skip_ws(self, *, newlines: bool = False) -> None:
        """Skip blanks (and with `newlines`, line breaks and comments)."""
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.i += 1
            elif newlines and ch == "#":
                while self.i < len(self.text) and self.text[self.i] != "\n":
                    self.i += 1
            else:
                return

    def skip_line(self) -> None:
        while self.i < len(self.text) and self.text[self.i] != "\n":
            self.i += 1

    def read_key_part(self) -> tuple[str, Pos]:
        start = self.pos()
        ch = self.peek()
        if ch in "\"'":
            return self.read_string(), start
        j = self.i
        while j < len(self.text) and self.text[j] in _BARE_KEY:
            j += 1
        part, self.i = self.text[self.i : j], j
        return part, start

    def read_dotted_key(self) -> list[tuple[str, Pos]]:
        parts = [self.read_key_part()]
        self.skip_ws()
        while self.peek() == ".":
            self.i += 1
            self.skip_ws()
            parts.append(self.read_key_part())
            self.skip_ws()
        return parts

    def read_string(self) -> str:
        """Consume a string literal of any of TOML's four kinds and return its (approximate) content."""
        quote = self.peek()
        if self.text.startswith(quote * 3, self.i):
            end = self.text.find(quote * 3, self.i + 3)
            while quote == '"' and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            # A closing delimiter may be followed by up to two more quotes that belong to the content.
            while self.text.startswith(quote, end + 3):
                end += 1
            content = self.text[self.i + 3 : end]
            self.i = end + 3
            return content
        j = self.i + 1
        while self.text[j] != quote:
            j += 2 if quote == '"' and self.text[j] == "\\" else 1
        content = self.text[self.i + 1 : j]
        self.i = j + 1
        return content.replace('\\"', '"').replace("\\\\", "\\") if quote == '"' else content

    def resolve(self, parts: list[str]) -> Path:
        """A header's key path with the current index of every array of tables it passes through."""
        path: list[str | int] = []
        for part in parts:
            path.append(part)
            if tuple(path) in self.array_counts:
                path.append(self.array_counts[tuple(path)] - 1)
        return tuple(path)

    def record_key(self, base: Path, parts: list[tuple[str, Pos]]) -> Path:
        path = base
        for name, at in parts:
            path = (*path, name)
            self.out.keys.setdefault(path, at)
        return path

    def read_value(self, path: Path) -> None:
        self.out.values[path] = self.pos()
        ch = self.peek()
        if ch in "\"'":
            self.read_string()
        elif ch == "[":
            self.i += 1
            index = 0
            while True:
                self.skip_ws(newlines=True)
                if self.peek() == "]":
                    self.i += 1
                    return
                self.read_value((*path, index))
                index += 1
                self.skip_ws(newlines=True)
                if self.peek() == ",":
                    self.i += 1
        elif ch == "{":
            self.i += 1
            while True:
                self.skip_ws()
                if self.peek() == "}":
                    self.i += 1
                    return
                key_path = self.record_key(path, self.read_dotted_key())
                self.skip_ws()
                self.i += 1  # the '='
                self.skip_ws()
                self.read_value(key_path)
                self.skip_ws()
                if self.peek() == ",":
                    self.i += 1
        else:
            j = self.i
            while j < len(self.text) and self.text[j] not in _VALUE_END:
                j += 1
            self.i = j

    def run(self) -> Positions:
        table: Path = ()
        while True:
            self.skip_ws(newlines=True)
            if self.i >= len(self.text):
                return self.out
            if self.peek() == "[":
                at = self.pos()
                double = self.peek(1) == "["
                self.i += 2 if double else 1
                self.skip_ws()
                names = [name for name, _ in self.read_dotted_key()]
                if double:
                    parent = self.resolve(names[:-1])
                    array = (*parent, names[-1])
                    self.array_counts[array] = self.array_counts.get(array, 0) + 1
                    table = (*array, self.array_counts[array] - 1)
                    self.out.keys.setdefault(array, at)
                else:
                    table = self.resolve(names)
                for end in range(1, len(table) + 1):  # a header also defines its parent tables
                    self.out.keys.setdefault(table[:end], at)
                self.skip_line()
                continue
            key_path = self.record_key(table, self.read_dotted_key())
            self.skip_ws()
            self.i += 1  # the '='
            self.skip_ws()
            self.read_value(key_path)
            self.skip_line()


def _escaped(text: str, at: int) -> bool:
    """Whether the character at `at` is preceded by an odd number of backslashes."""
    n = 0
    while at - n - 1 >= 0 and text[at - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def locate(text: str) -> Positions:
    """Map every key path of a valid TOML document to where its key and value are written."""
    return _Scanner(text).run()


KeyPath = Path


class KeyLocator:
    """Line numbers of one TOML text's key paths, for messages of the form `file:line: key: message`."""

    def __init__(self, text: str) -> None:
        self._positions = locate(text)

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest parent written in the text; None when there is none."""
        while path:
            if path in self._positions.keys:
                return self._positions.keys[path][0]
            path = path[:-1]
        return None


def format_path(path: KeyPath) -> str:
    """A key path as a person writes it: `organisations[0].mailboxes[1].path`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
