"""The matchers a field test can use: equals, words, glob, regex, fuzzy, comparisons, recipient."""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import regex
from rapidfuzz import fuzz, process, utils

from rules.context import Detail, EvalContext
from rules.facts import FieldSpec
from rules.recipients import candidates_from, match_recipient

_SNIPPET_CHARS = 80


def _snippet(spec: FieldSpec, text: str) -> str:
    if spec.private:
        return text[:40]  # only the matched words themselves, never the surrounding body
    return text[:_SNIPPET_CHARS]


@dataclass(frozen=True)
class Equals:
    """Equal to the value or to any value of a list; text compares case-insensitively and trimmed."""

    values: frozenset[Any]
    name: str = "equals"

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]:
        value = ctx.value(spec)
        if isinstance(value, tuple):
            ok = not self.values.isdisjoint(ctx.keys(spec))
        else:
            ok = value in self.values
        return ok, {"value": ctx.shown(spec)}


@dataclass(frozen=True)
class Words:
    """Contains any (or all) of the words: whole Unicode words, case-insensitive.

    A term ending in `*` matches words starting with it (Danish compounds: `moms*` finds
    'momsangivelse'); a term of several words matches them as a phrase.
    """

    name: str
    terms: tuple[str, ...]
    singles: frozenset[str]
    prefixes: tuple[str, ...]
    phrases: tuple[tuple[str, re.Pattern[str]], ...]

    def _found(self, spec: FieldSpec, ctx: EvalContext) -> list[str]:
        words = ctx.words(spec)
        found = [w for w in self.singles if w in words]
        found += [p + "*" for p in self.prefixes if any(w.startswith(p) for w in words)]
        if self.phrases:
            text = ctx.folded(spec)
            found += [term for term, rx in self.phrases if rx.search(text)]
        return found

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]:
        found = self._found(spec, ctx)
        detail: Detail = {"value": ctx.shown(spec), "found": sorted(found)}
        if self.name == "any":
            return bool(found), detail
        missing = sorted(set(self.terms) - set(found))
        if missing:
            detail["missing"] = missing
        return not missing, detail


def words_matcher(name: str, terms: Sequence[str]) -> Words:
    """Compile an `any` / `all` term list."""
    folded = tuple(dict.fromkeys(t.strip().casefold() for t in terms))
    singles, prefixes, phrases = set(), [], []
    for term in folded:
        if term.endswith("*") and re.fullmatch(r"\w+\*", term):
            prefixes.append(term[:-1])
        elif re.fullmatch(r"\w+", term):
            singles.add(term)
        else:
            parts = [re.escape(p) for p in re.findall(r"\w+|[^\w\s]", term)]
            phrases.append((term, re.compile(r"(?<!\w)" + r"\s*".join(parts) + r"(?!\w)")))
    return Words(name, folded, frozenset(singles), tuple(prefixes), tuple(phrases))


@dataclass(frozen=True)
class Glob:
    """Matches a shell-style pattern (`*.pdf`, `Faktura *`), case-insensitive, on the whole value."""

    patterns: tuple[str, ...]
    compiled: re.Pattern[str]
    name: str = "glob"

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]:
        value = ctx.value(spec)
        values = value if isinstance(value, tuple) else ()
        ok = any(self.compiled.match(v.casefold()) for v in values)
        return ok, {"value": ctx.shown(spec)}


def glob_matcher(patterns: Sequence[str]) -> Glob:
    """Compile glob patterns into one anchored regex."""
    joined = "|".join(fnmatch.translate(p.casefold()) for p in patterns)
    return Glob(tuple(patterns), re.compile(joined, re.DOTALL))


@dataclass(frozen=True)
class Regex:
    """Searches a Unicode regex (any of a list); named groups become captures.

    Each search runs under a time limit (the `regex` package's `timeout=`), bounded also by the
    evaluation's total budget, so a catastrophic pattern costs at most the limit and does not match.
    """

    patterns: tuple[regex.Pattern[str], ...]
    name: str = "regex"

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]:
        value = ctx.value(spec)
        detail: Detail = {"value": ctx.shown(spec)}
        for text in value if isinstance(value, tuple) else ():
            for pattern in self.patterns:
                limit = min(ctx.regex_timeout, ctx.remaining())
                if limit <= 0:
                    detail["reason"] = "regex time budget of this evaluation exhausted"
                    return False, detail
                try:
                    m = pattern.search(text, timeout=limit)
                except TimeoutError:
                    detail["reason"] = f"regex timed out after {limit:.3f}s: {pattern.pattern}"
                    return False, detail
                if m is not None:
                    groups = {k: v for k, v in m.groupdict().items() if v is not None}
                    ctx.captures.update(groups)
                    detail["match"] = _snippet(spec, m.group(0))
                    if groups:
                        detail["captures"] = groups if not spec.private else sorted(groups)
                    return True, detail
        return False, detail


@dataclass(frozen=True)
class Fuzzy:
    """Similar to one of `to` (rapidfuzz WRatio, 0-100): best score ≥ min_score and ≥ margin ahead
    of the runner-up among the other choices; `capture` names a capture set to the best choice."""

    choices: tuple[str, ...]
    min_score: float
    margin: float
    capture: str | None
    name: str = "fuzzy"

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]:
        value = ctx.value(spec)
        best: tuple[str, float, str | None, float] | None = None
        for text in value if isinstance(value, tuple) else ():
            top = process.extract(
                text, self.choices, scorer=fuzz.WRatio, processor=utils.default_process, limit=2
            )
            if not top:
                continue
            runner = top[1] if len(top) > 1 else None
            cand = (top[0][0], top[0][1], runner[0] if runner else None, runner[1] if runner else 0.0)
            if best is None or cand[1] > best[1]:
                best = cand
        detail: Detail = {"value": ctx.shown(spec)}
        if best is None:
            return False, detail
        choice, score, runner_up, runner_score = best
        detail.update(best=choice, score=round(score, 1), runner_up=runner_up)
        detail["runner_up_score"] = round(runner_score, 1)
        ok = score >= self.min_score and score - runner_score >= self.margin
        if not ok:
            detail["reason"] = (
                f"score {score:.1f} below {self.min_score:g}"
                if score < self.min_score
                else f"margin {score - runner_score:.1f} over runner-up below {self.margin:g}"
            )
        elif self.capture:
            ctx.captures[self.capture] = choice
        return ok, detail


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass(frozen=True)
class Compare:
    """A numeric, date, time or datetime comparison: gt / gte / lt / lte, or inclusive `between`."""

    name: str
    low: Any
    high: Any = None

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]:
        value = ctx.value(spec)
        if value is None or isinstance(value, tuple):
            return False, {"value": None}
        if self.name == "between":
            ok = self.low <= value <= self.high
        else:
            ok = _OPS[self.name](value, self.low)
        return ok, {"value": ctx.shown(spec)}


@dataclass(frozen=True)
class RecipientMatch:
    """Names an approved recipient: the field's names ('Att.: Jens Hansen', 'Til: Økonomi') are
    fuzzy-matched to the organisation's recipients' names and aliases; the winner is captured."""

    min_score: float
    margin: float
    capture: str
    name: str = "recipient"

    def match(self, spec: FieldSpec, ctx: EvalContext) -> tuple[bool, Detail]:
        value = ctx.value(spec)
        detail: Detail = {"value": ctx.shown(spec)}
        if ctx.directory is None:
            detail["reason"] = "no recipient directory available"
            return False, detail
        texts = value if isinstance(value, tuple) else ()
        found = match_recipient(
            candidates_from(texts, labels=spec.name.startswith("attention")),
            ctx.directory.names(ctx.facts.organisation),
        )
        if found is None:
            detail["reason"] = "no recipient name found"
            return False, detail
        detail.update(found.to_json(private=spec.private))
        lead = found.score - found.runner_up_score
        ok = found.score >= self.min_score and lead >= self.margin
        if not ok:
            detail["reason"] = (
                f"score {found.score:.1f} below {self.min_score:g}"
                if found.score < self.min_score
                else f"margin {lead:.1f} over runner-up below {self.margin:g}"
            )
        else:
            ctx.captures[self.capture] = found.recipient
        return ok, detail
