"""Validates a matcher's TOML arguments against its field's kind and builds the matcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import regex

from rules.facts import (
    DANISH_WEEKDAYS,
    LOCAL_TZ,
    MESSAGE_TYPES,
    WEEKDAYS,
    FieldSpec,
    Kind,
)
from rules.context import Matcher
from rules.matchers import (
    Compare,
    Equals,
    Fuzzy,
    RecipientMatch,
    Regex,
    glob_matcher,
    words_matcher,
)

_TEXT = ("equals", "any", "all", "glob", "regex", "fuzzy", "recipient")
_ORDERED = ("equals", "gt", "gte", "lt", "lte", "between")
ALLOWED: dict[Kind, tuple[str, ...]] = {
    Kind.TEXT: _TEXT,
    Kind.BOOL: ("equals",),
    Kind.INT: _ORDERED,
    Kind.DATE: _ORDERED,
    Kind.TIME: _ORDERED,
    Kind.DATETIME: _ORDERED,
    Kind.WEEKDAY: ("equals",),
    Kind.MESSAGE_TYPE: ("equals",),
}
ALL_MATCHERS = frozenset(m for names in ALLOWED.values() for m in names)
# Names of people and units appear in these; elsewhere a recipient match would be a mistake.
RECIPIENT_FIELDS = ("attention", "title", "text")

SubPath = tuple[str | int, ...]


def type_name(value: Any) -> str:
    """TOML's name for a parsed value's type, for error messages."""
    for kind, name in (
        (bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array"),
        (dict, "table"), (datetime, "datetime"), (date, "date"), (time, "time"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


@dataclass
class Compiled:
    """The built matcher (None when the arguments were wrong), its captures and the errors found.

    Each error is (sub-path below the matcher's key, message, whether it points at the value).
    """

    matcher: Matcher | None = None
    captures: frozenset[str] = frozenset()
    errors: list[tuple[SubPath, str, bool]] = field(default_factory=list)


def compile_matcher(spec: FieldSpec, name: str, arg: Any) -> Compiled:
    """Build matcher `name` for field `spec` from its TOML argument, or report why it cannot be."""
    out = Compiled()
    allowed = ALLOWED[spec.kind]
    if name not in allowed:
        if name in ALL_MATCHERS:
            msg = f"matcher '{name}' does not apply to {spec.kind.value} field '{spec.name}'"
        else:
            msg = f"unknown matcher or field '{name}' under '{spec.name}'"
        out.errors.append(((), f"{msg}; use one of: {', '.join(allowed)}", False))
        return out
    if name == "recipient" and not spec.name.startswith(RECIPIENT_FIELDS):
        msg = f"'recipient' applies to attention, title and text, not '{spec.name}'"
        out.errors.append(((), msg, False))
        return out
    try:
        out.matcher = _build(spec, name, arg, out)
    except _ArgError as e:
        out.errors.append((e.sub, e.message, not e.at_key))
    if out.errors:
        out.matcher = None
    return out


class _ArgError(Exception):
    def __init__(self, message: str, sub: SubPath = (), *, at_key: bool = False) -> None:
        super().__init__(message)
        self.message, self.sub, self.at_key = message, sub, at_key


def _items(arg: Any, what: str) -> list[tuple[SubPath, Any]]:
    """A scalar or non-empty array as (sub-path, item) pairs."""
    if isinstance(arg, list):
        if not arg:
            raise _ArgError(f"expected {what} or a non-empty array of them")
        return [((i,), v) for i, v in enumerate(arg)]
    if isinstance(arg, dict):
        raise _ArgError(f"expected {what} or an array of them, got table")
    return [((), arg)]


def _strings(arg: Any) -> list[str]:
    out = []
    for sub, v in _items(arg, "a string"):
        if not isinstance(v, str) or not v.strip():
            raise _ArgError(f"expected a non-empty string, got {type_name(v)}", sub)
        out.append(v)
    return out


def _operand(kind: Kind, v: Any, sub: SubPath) -> Any:
    """Check one comparison operand against the field's kind; naive datetimes mean Danish time."""
    if kind is Kind.INT and isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if kind is Kind.DATE and isinstance(v, date) and not isinstance(v, datetime):
        return v
    if kind is Kind.TIME and isinstance(v, time):
        return v.replace(tzinfo=None)
    if kind is Kind.DATETIME and isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=LOCAL_TZ)
    raise _ArgError(f"expected a {kind.value} value, got {type_name(v)}", sub)


def _equals(spec: FieldSpec, arg: Any) -> Equals:
    values: set[Any] = set()
    for sub, v in _items(arg, "a value"):
        if spec.kind is Kind.TEXT:
            if not isinstance(v, str):
                raise _ArgError(f"expected a string, got {type_name(v)}", sub)
            values.add(v.strip().casefold())
        elif spec.kind is Kind.BOOL:
            if not isinstance(v, bool):
                raise _ArgError(f"expected true or false, got {type_name(v)}", sub)
            values.add(v)
        elif spec.kind is Kind.WEEKDAY:
            day = v.strip().casefold() if isinstance(v, str) else ""
            day = DANISH_WEEKDAYS.get(day, day)
            if day not in WEEKDAYS:
                raise _ArgError(f"unknown weekday {v!r}; expected monday..sunday or mandag..søndag", sub)
            values.add(day)
        elif spec.kind is Kind.MESSAGE_TYPE:
            mtype = v.strip().upper() if isinstance(v, str) else ""
            if mtype not in MESSAGE_TYPES:
                known = ", ".join(sorted(MESSAGE_TYPES))
                raise _ArgError(f"unknown message type {v!r}; expected one of {known}", sub)
            values.add(mtype)
        else:
            values.add(_operand(spec.kind, v, sub))
    return Equals(frozenset(values))


def _regex(arg: Any, out: Compiled) -> Regex:
    compiled = []
    captures: set[str] = set()
    for sub, pattern in _items(arg, "a regex string"):
        if not isinstance(pattern, str) or not pattern:
            raise _ArgError(f"expected a regex string, got {type_name(pattern)}", sub)
        try:
            rx = regex.compile(pattern)
        except regex.error as e:
            raise _ArgError(f"bad regex: {e.msg} at pattern position {e.pos}", sub) from None
        captures |= set(rx.groupindex)
        compiled.append(rx)
    out.captures = frozenset(captures)
    return Regex(tuple(compiled))


def _options(arg: Any, defaults: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if arg is True and not required:
        return dict(defaults)
    if not isinstance(arg, dict):
        shape = ", ".join(f"{k} = ..." for k in defaults)
        raise _ArgError(f"expected a table like {{ {shape} }}, got {type_name(arg)}")
    opts = dict(defaults)
    for key, v in arg.items():
        if key not in defaults:
            msg = f"unknown option '{key}'; expected one of: {', '.join(defaults)}"
            raise _ArgError(msg, (key,), at_key=True)
        opts[key] = v
    for key in required:
        if opts[key] is None:
            raise _ArgError(f"option '{key}' is required")
    for key in ("min_score", "margin"):
        v = opts.get(key)
        if key in opts and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100):
            raise _ArgError(f"'{key}' must be a number from 0 to 100", (key,))
    capture = opts.get("capture")
    if capture is not None and (not isinstance(capture, str) or not capture.isidentifier()):
        raise _ArgError("'capture' must be a name (letters, digits, _)", ("capture",))
    return opts


def _build(spec: FieldSpec, name: str, arg: Any, out: Compiled) -> Matcher:
    if name == "equals":
        return _equals(spec, arg)
    if name in ("any", "all"):
        return words_matcher(name, _strings(arg))
    if name == "glob":
        return glob_matcher(_strings(arg))
    if name == "regex":
        return _regex(arg, out)
    if name == "fuzzy":
        o = _options(arg, {"to": None, "min_score": 90, "margin": 0, "capture": None}, ("to",))
        try:
            choices = _strings(o["to"])
        except _ArgError as e:
            raise _ArgError(e.message, ("to", *e.sub)) from None
        if o["capture"]:
            out.captures = frozenset({o["capture"]})
        return Fuzzy(tuple(choices), float(o["min_score"]), float(o["margin"]), o["capture"])
    if name == "recipient":
        o = _options(arg, {"min_score": 90, "margin": 10, "capture": "recipient"})
        out.captures = frozenset({o["capture"]})
        return RecipientMatch(float(o["min_score"]), float(o["margin"]), o["capture"])
    if name == "between":
        if not isinstance(arg, list) or len(arg) != 2:
            raise _ArgError("'between' takes an array of two values: [low, high]")
        low, high = (_operand(spec.kind, v, (i,)) for i, v in enumerate(arg))
        if low > high:
            raise _ArgError("'between' needs low <= high")
        return Compare("between", low, high)
    return Compare(name, _operand(spec.kind, arg, ()))
