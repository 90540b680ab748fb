"""Fuzzy recipient matching: which approved recipient a letter's attention line or text names."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process, utils

# "Att.: Jens Hansen", "Att. Jens Hansen", "Attention: Økonomi", "Til: Økonomi", "To: Legal"
_ADDRESS_LINE = re.compile(
    r"^[ \t]*(?:att(?:n|ention)?|til|to)[ \t]*(?:\.[ \t]*:?|:)[ \t]*(?P<name>[^\n]*?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_PREFIX = re.compile(r"^\s*(?:att(?:n|ention)?|til|to)\s*(?:\.\s*:?|:)\s*", re.IGNORECASE)
_MAX_CANDIDATES = 20
_MAX_CHARS = 100
# match_recipient's answers: per organisation's recipients (by content), per candidate names.
_Recipients = tuple[tuple[str, tuple[str, ...]], ...]
_ANSWERS: dict[_Recipients, dict[tuple[str, ...], "RecipientCandidate | None"]] = {}
_KEEP_DIRECTORIES = 64
_KEEP_ANSWERS = 1024


@dataclass(frozen=True)
class RecipientCandidate:
    """The best-scoring approved recipient for some names, with the runner-up (another recipient)."""

    recipient: str
    name: str
    candidate: str
    score: float
    runner_up: str | None
    runner_up_score: float

    def to_json(self, *, private: bool = False) -> dict[str, Any]:
        """Explanation data; with `private` the text the name was found in is left out."""
        out: dict[str, Any] = {
            "recipient": self.recipient,
            "recipient_name": self.name,
            "score": round(self.score, 1),
            "runner_up": self.runner_up,
            "runner_up_score": round(self.runner_up_score, 1),
        }
        if not private:
            out["candidate"] = self.candidate
        return out


def candidates_from(texts: Iterable[str], *, labels: bool) -> list[str]:
    """The names to try: each label itself (attention data), or each 'Att.:'/'Til:' line of a text."""
    out: list[str] = []
    for text in texts:
        if labels:
            out.append(_PREFIX.sub("", text, count=1).strip())
        else:
            out.extend(m.group("name") for m in _ADDRESS_LINE.finditer(text))
        if len(out) >= _MAX_CANDIDATES:
            break
    return [c[:_MAX_CHARS] for c in out[:_MAX_CANDIDATES] if c]


def match_recipient(
    candidates: Sequence[str], names: Mapping[str, Sequence[str]]
) -> RecipientCandidate | None:
    """Score every candidate against every recipient's name and aliases (rapidfuzz WRatio).

    Returns the best recipient, or None when there is nothing to compare. The runner-up is the best
    *other* recipient, so two aliases of the same person never count as competing with each other.
    """
    # A mailroom's letters name the same few people and units again and again: the answer for the
    # same names against the same recipients is kept (keyed by content, so a reloaded recipients file
    # is never answered from the old one; bounded, so a flood of distinct names costs no memory).
    recipients = tuple((rid, tuple(labels)) for rid, labels in names.items())
    answers = _ANSWERS.get(recipients)
    if answers is None:
        if len(_ANSWERS) >= _KEEP_DIRECTORIES:
            _ANSWERS.clear()
        answers = _ANSWERS[recipients] = {}
    key = tuple(candidates)
    try:
        return answers[key]
    except KeyError:
        pass
    found = _match(key, recipients)
    if len(answers) >= _KEEP_ANSWERS:
        answers.clear()
    answers[key] = found
    return found


def _match(candidates: tuple[str, ...], names: _Recipients) -> RecipientCandidate | None:
    choices: list[str] = []
    owners: list[str] = []
    for rid, labels in names:
        for label in labels:
            choices.append(label)
            owners.append(rid)
    if not choices or not candidates:
        return None
    best: dict[str, tuple[float, str, str]] = {}
    for cand in candidates:
        for label, score, index in process.extract(
            cand, choices, scorer=fuzz.WRatio, processor=utils.default_process, limit=None
        ):
            rid = owners[index]
            if rid not in best or score > best[rid][0]:
                best[rid] = (score, label, cand)
    ranked = sorted(best.items(), key=lambda kv: kv[1][0], reverse=True)
    (rid, (score, label, cand)) = ranked[0]
    runner = ranked[1] if len(ranked) > 1 else None
    return RecipientCandidate(
        recipient=rid,
        name=label,
        candidate=cand,
        score=score,
        runner_up=runner[0] if runner else None,
        runner_up_score=runner[1][0] if runner else 0.0,
    )
