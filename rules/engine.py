"""Evaluates a loaded rule set on one message: first match wins, `continue` opts in to more."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from core.recipients import RecipientDirectory
from rules.context import EvalContext, Trace
from rules.facts import MessageFacts
from rules.model import NO_RULE_REASON, ActionName, Evaluation, Rule

_REF = re.compile(r"\$\{(\w+)\}")
DEFAULT_REGEX_TIMEOUT = 0.05  # seconds for one regex search
DEFAULT_BUDGET = 0.5  # seconds of regex time for one whole evaluation


@dataclass(frozen=True)
class RuleSet:
    """A checked, immutable set of rules in evaluation order; swap whole sets to reload."""

    rules: tuple[Rule, ...]
    source: str
    version: str
    directory: RecipientDirectory | None = None
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT
    budget: float = DEFAULT_BUDGET

    def evaluate(
        self, facts: MessageFacts, *, directory: RecipientDirectory | None = None
    ) -> Evaluation:
        """Decide one message. With a directory (given here or at load), groups are expanded and
        a route to an id the organisation does not have becomes a hold, never a silent drop."""
        directory = directory if directory is not None else self.directory
        ctx = EvalContext(facts, directory, self.regex_timeout, time.monotonic() + self.budget)
        org = facts.organisation.strip()
        mailbox, provider = facts.mailbox.strip().casefold(), facts.provider.strip().casefold()
        tried: list[dict[str, Any]] = []
        skipped = 0
        matched: list[str] = []
        routed: list[str] = []
        tags: list[str] = []
        priority: int | None = None
        router: str | None = None
        holder: str | None = None
        hold_reason: str | None = None
        for rule in self.rules:
            if not rule.in_scope(org, mailbox, provider):
                skipped += 1
                continue
            ctx.captures.clear()
            trace: Trace = []
            ok = rule.when.test(ctx, trace)
            entry: dict[str, Any] = {"rule": rule.name, "at": rule.at, "matched": ok}
            entry["conditions"] = trace
            tried.append(entry)
            if not ok:
                continue
            ids: list[str] = []
            if rule.route:
                problem = _resolve(rule, ctx.captures, ids)
                if problem is not None:
                    entry.update(matched=False, reason=problem)
                    continue
                entry["route"] = ids
            if ctx.captures:
                entry["captures"] = dict(ctx.captures)
            matched.append(rule.name)
            tags += (_fill(t, ctx.captures) for t in rule.tags)
            if rule.priority is not None:
                priority = rule.priority if priority is None else max(priority, rule.priority)
            if rule.hold is not None and holder is None:
                holder, hold_reason = rule.name, _fill(rule.hold, ctx.captures)
            elif rule.route:
                router = router or rule.name
                routed += ids
            if not rule.continue_:
                break
        explanation: dict[str, Any] = {
            "rule_set": self.version,
            "tried": tried,
            "skipped_out_of_scope": skipped,
        }
        recipients = tuple(dict.fromkeys(routed))
        if directory is not None and recipients and holder is None:
            recipients, unknown = _expand(recipients, directory, org)
            if unknown:
                holder = router
                names = ", ".join(unknown)
                hold_reason = f"route to unknown recipient(s) {names} for organisation {org}"
                explanation["unknown_recipients"] = unknown
        action: ActionName
        if holder is not None:
            action, rule_name, recipients = "hold", holder, ()
        elif router is not None:
            action, rule_name, hold_reason = "route", router, None
        else:
            action, rule_name, recipients, hold_reason = "hold", None, (), NO_RULE_REASON
        explanation["decided_by"] = rule_name
        return Evaluation(
            action=action,
            recipients=recipients,
            rule=rule_name,
            tags=tuple(dict.fromkeys(tags)),
            priority=priority or 0,
            reason=hold_reason,
            matched_rules=tuple(matched),
            explanation=explanation,
        )


def _fill(text: str, captures: dict[str, str]) -> str:
    return _REF.sub(lambda m: captures.get(m.group(1), ""), text) if "${" in text else text


def _resolve(rule: Rule, captures: dict[str, str], out: list[str]) -> str | None:
    """Append the rule's route ids to `out`; return why they cannot be resolved, if so."""
    for target in rule.route:
        if target.id is not None:
            out.append(target.id)
            continue
        name = target.capture or ""
        value = captures.get(name)
        if value is None:
            return f"'${{{name}}}' was not captured"
        if target.lookup is None:
            out.append(value)
            continue
        ids = target.lookup.get(value.strip().casefold())
        if ids is None:
            return f"'{value}' has no entry in [lookup.{name}]"
        out += ids
    return None


def _expand(
    ids: tuple[str, ...], directory: RecipientDirectory, org: str
) -> tuple[tuple[str, ...], list[str]]:
    """Groups replaced by their members; also the ids the organisation does not know."""
    groups = directory.groups(org)
    known = directory.ids(org)
    out: list[str] = []
    unknown: list[str] = []
    for rid in ids:
        if rid in groups:
            out += groups[rid]
        elif rid in known:
            out.append(rid)
        else:
            unknown.append(rid)
    return tuple(dict.fromkeys(out)), unknown
