"""Helpers around an evaluation: the organisation fallback and comparing two decisions (replay)."""

from __future__ import annotations

import dataclasses
from typing import Any

from rules.model import NO_RULE_REASON, Evaluation


def apply_fallback(evaluation: Evaluation, fallback_recipient: str | None = None) -> Evaluation:
    """What happens to a message no rule decided: routed to the organisation's fallback recipient
    (e.g. the front desk) when one is configured, else held for manual placement. Decided
    evaluations are returned unchanged, so a message is never dropped silently."""
    if evaluation.decided:
        return evaluation
    explanation = {**evaluation.explanation, "fallback": fallback_recipient or "hold"}
    if fallback_recipient:
        return dataclasses.replace(
            evaluation,
            action="route",
            recipients=(fallback_recipient,),
            reason=None,
            explanation=explanation,
        )
    return dataclasses.replace(
        evaluation, action="hold", recipients=(), reason=NO_RULE_REASON, explanation=explanation
    )


def diff_decisions(old: Evaluation, new: Evaluation) -> str | None:
    """How `new` differs for delivery from `old`: "newly held", "newly automated",
    "recipient changed", or None when the message would end up in the same place."""
    if old.action == "route" and new.action == "hold":
        return "newly held"
    if old.action == "hold" and new.action == "route":
        return "newly automated"
    if old.action == "route" and set(old.recipients) != set(new.recipients):
        return "recipient changed"
    return None


def compact_explanation(evaluation: Evaluation, *, keep: int = 10) -> dict[str, Any]:
    """A smaller explanation for storing with every decision: matched rules in full, and of the
    rules that did not match only the last `keep` (those just before the decision) with their
    first failing condition; `not_matched` counts them all."""
    ex = evaluation.explanation
    tried = ex.get("tried", [])
    failed = [t for t in tried if not t.get("matched")]
    tail = {id(t) for t in failed[max(len(failed) - keep, 0) :]}
    kept = []
    for entry in tried:
        if entry.get("matched"):
            kept.append(entry)
        elif id(entry) in tail:
            conditions = entry.get("conditions", [])
            short = {k: v for k, v in entry.items() if k != "conditions"}
            short["failed"] = next((c for c in conditions if not c.get("matched")), None)
            kept.append(short)
    out = {k: v for k, v in ex.items() if k != "tried"}
    out["tried"] = kept
    out["not_matched"] = len(failed)
    return out
