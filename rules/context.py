"""The per-message evaluation context every condition and matcher shares, and the matcher protocol."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from time import monotonic
from typing import Any, Protocol

from core.recipients import RecipientDirectory
from rules.facts import FieldSpec, FieldValue, MessageFacts

_WORD = re.compile(r"\w+")
_SHOWN_CHARS = 80
Trace = list[dict[str, Any]]
Detail = dict[str, Any]


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


class Matcher(Protocol):
    """Decides one field's test; the detail dict goes into the explanation and must be JSON-ready."""

    @property
    def name(self) -> str: ...

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]: ...
