"""Condition trees (`all` / `any` / `not` over field tests) and the per-message evaluation context."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

from rules.base import RecipientDirectory
from rules.facts import FieldSpec, FieldValue, MessageFacts

if TYPE_CHECKING:
    from rules.matchers import Matcher

_WORD = re.compile(r"\w+")
_SHOWN_CHARS = 80
Trace = list[dict[str, Any]]


@dataclass
class EvalContext:
    """Everything one evaluation shares: the facts, cached field views, captures and the time budget."""

    facts: MessageFacts
    directory: RecipientDirectory | None
    regex_timeout: float
    deadline: float
    captures: dict[str, str] = field(default_factory=dict)
    _values: dict[str, FieldValue] = field(default_factory=dict)
    _folded: dict[str, str] = field(default_factory=dict)
    _keys: dict[str, frozenset[str]] = field(default_factory=dict)
    _shown: dict[str, Any] = field(default_factory=dict)
    _words: dict[str, frozenset[str]] = field(default_factory=dict)

    def value(self, spec: FieldSpec) -> FieldValue:
        """The field's value, extracted once per evaluation."""
        try:
            return self._values[spec.name]
        except KeyError:
            value = self._values[spec.name] = spec.extract(self.facts)
            return value

    def folded(self, spec: FieldSpec) -> str:
        """The field's text values, case-folded and joined by newlines (for phrase search)."""
        try:
            return self._folded[spec.name]
        except KeyError:
            value = self.value(spec)
            text = "\n".join(value).casefold() if isinstance(value, tuple) else ""
            self._folded[spec.name] = text
            return text

    def keys(self, spec: FieldSpec) -> frozenset[str]:
        """The field's text values trimmed and case-folded, for `equals`."""
        try:
            return self._keys[spec.name]
        except KeyError:
            value = self.value(spec)
            texts = value if isinstance(value, tuple) else ()
            keys = self._keys[spec.name] = frozenset(v.strip().casefold() for v in texts)
            return keys

    def shown(self, spec: FieldSpec) -> Any:
        """The field's value as explanations show it (see `shown`)."""
        try:
            return self._shown[spec.name]
        except KeyError:
            out = self._shown[spec.name] = shown(spec, self.value(spec))
            return out

    def words(self, spec: FieldSpec) -> frozenset[str]:
        """The field's case-folded Unicode words (so 'Økonomi,' yields 'økonomi')."""
        try:
            return self._words[spec.name]
        except KeyError:
            words = self._words[spec.name] = frozenset(_WORD.findall(self.folded(spec)))
            return words

    def remaining(self) -> float:
        """Seconds left of this evaluation's total regex budget."""
        return self.deadline - monotonic()


def shown(spec: FieldSpec, value: FieldValue) -> Any:
    """How a field's value appears in an explanation: bounded, and never the body text itself."""
    if isinstance(value, tuple):
        if not value:
            return None
        if spec.private:
            return f"<{sum(len(v) for v in value)} characters>"
        short = [v if len(v) <= _SHOWN_CHARS else v[:_SHOWN_CHARS] + "…" for v in value[:5]]
        return short[0] if len(short) == 1 else short
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return value


class Node(Protocol):
    """A condition: answers yes/no for a message and appends what it looked at to the trace."""

    @property
    def captures(self) -> frozenset[str]: ...

    def test(self, ctx: EvalContext, trace: Trace) -> bool: ...


@dataclass(frozen=True)
class FieldTest:
    """One matcher applied to one field."""

    spec: FieldSpec
    matcher: Matcher
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        ok, detail = self.matcher.match(self.spec, ctx)
        entry: dict[str, Any] = {"field": self.spec.name, "matcher": self.matcher.name, "matched": ok}
        entry.update(detail)
        trace.append(entry)
        return ok


def _restore(ctx: EvalContext, saved: dict[str, str] | None) -> None:
    if saved is not None:
        ctx.captures.clear()
        ctx.captures.update(saved)


@dataclass(frozen=True)
class AllOf:
    """True when every child is; stops at the first false one (which the trace then shows)."""

    children: tuple[Node, ...]
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        # A branch that fails half-way must not leave its captures behind for the action to use.
        saved = dict(ctx.captures) if self.captures else None
        for child in self.children:
            if not child.test(ctx, trace):
                _restore(ctx, saved)
                return False
        return True


@dataclass(frozen=True)
class AnyOf:
    """True when some child is; stops at the first true one."""

    children: tuple[Node, ...]
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        inner: Trace = []
        ok = any(_branch(child, ctx, inner) for child in self.children)
        trace.append({"any": inner, "matched": ok})
        return ok


def _branch(child: Node, ctx: EvalContext, trace: Trace) -> bool:
    inner: Trace = []
    ok = child.test(ctx, inner)
    trace.append(inner[0] if len(inner) == 1 else {"all": inner, "matched": ok})
    return ok


@dataclass(frozen=True)
class NotOf:
    """True when its child is false; the child's captures are discarded either way."""

    child: Node
    captures: frozenset[str] = frozenset()

    def test(self, ctx: EvalContext, trace: Trace) -> bool:
        saved = dict(ctx.captures)
        inner: Trace = []
        ok = not self.child.test(ctx, inner)
        _restore(ctx, saved)
        trace.append({"not": inner, "matched": ok})
        return ok


def all_of(children: Sequence[Node]) -> AllOf:
    """An `AllOf` that knows which captures its children may set."""
    return AllOf(tuple(children), frozenset().union(*(c.captures for c in children)))


def any_of(children: Sequence[Node]) -> AnyOf:
    """An `AnyOf` that knows which captures its children may set."""
    return AnyOf(tuple(children), frozenset().union(*(c.captures for c in children)))
