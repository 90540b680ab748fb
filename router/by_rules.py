"""Routing by the administrators' rules, with the organisation's fallback when no rule decides."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from core.metrics import Metrics
from router.decision import Action, Decider, Decision, Facts
from core.recipients import RecipientDirectory
from rules import RuleErrors, RuleIssue, RuleSet, RuleWatcher, compact_explanation

log = logging.getLogger(__name__)


class RuleSource:
    """The active rule set, swapped atomically when the files change and the new set checks clean."""

    def __init__(self, directory: Path, recipients: RecipientDirectory | None, metrics: Metrics, *,
                 on_change: Callable[[RuleSet | list[RuleIssue]], None] | None = None) -> None:
        self._watcher = RuleWatcher(directory, recipients)
        self._metrics = metrics
        self._on_change = on_change
        # The first load is not a "change": there is no last good rule set to keep.
        first = self._watcher.poll()
        if not isinstance(first, RuleSet):
            raise RuleErrors(first or [])
        self.current: RuleSet | None = first
        self._metrics.rules_reloads.labels("ok").inc()
        if on_change is not None:
            on_change(first)

    def refresh(self) -> None:
        found = self._watcher.poll()
        if found is None:
            return
        if isinstance(found, RuleSet):
            if self.current is not None:
                log.info("rules reloaded: version %s", found.version)
            self.current = found
            self._metrics.rules_reloads.labels("ok").inc()
        else:
            self._metrics.rules_reloads.labels("refused").inc()
            log.error("changed rules refused, the last good rules stay active:\n%s",
                      "\n".join(str(i) for i in found))
        if self._on_change is not None:
            self._on_change(found)


class RulesDecider:
    """Rules first; what no rule decides goes to `fallback` (the organisation's default route)."""

    def __init__(self, rules: Callable[[], RuleSet | None], recipients: RecipientDirectory | None,
                 fallback: Decider) -> None:
        self._rules = rules
        self._recipients = recipients
        self._fallback = fallback

    def decide(self, facts: Facts) -> Decision:
        ruleset = self._rules()
        if ruleset is None:
            return self._fallback.decide(facts)
        evaluation = ruleset.evaluate(facts, directory=self._recipients)
        explanation = {"rules_version": ruleset.version, **compact_explanation(evaluation)}
        if evaluation.decided:
            return Decision(
                Action(evaluation.action),
                decided_by="rule",
                recipients=evaluation.recipients,
                rule=evaluation.rule,
                reason=evaluation.reason or f"rule {evaluation.rule!r}",
                explanation=explanation,
            )
        fallback = self._fallback.decide(facts)
        return Decision(
            fallback.action,
            decided_by=fallback.decided_by,
            recipients=fallback.recipients,
            reason=fallback.reason,
            explanation={**explanation, **fallback.explanation},
        )
