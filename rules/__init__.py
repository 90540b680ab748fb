"""Floor 2, rules: the administrators' TOML routing language (load, check, evaluate, explain, test, reload).

The grammar is documented in rules/README.md; a matcher (`words`, `regex`, `fuzzy`, `recipient`, ...)
lives in `matchers.py`, its arguments in `matcher_args.py`, the fields it reads in `facts.py`. The
rules parse no message: their callers (the router, `postbud rules`) hand them `MessageFacts` or a
`MessageReader`. Typical use by the router:

    ruleset = load(rules_dir, recipients)           # raises RuleErrors(issues) when invalid
    evaluation = ruleset.evaluate(MessageFacts(message, cvr, mailbox, provider, received_at))
    decision = apply_fallback(evaluation, organisation_fallback_recipient)
"""

from rules.decisions import apply_fallback, compact_explanation, diff_decisions
from rules.engine import RuleSet
from rules.facts import MessageFacts
from rules.loader import check, load
from rules.model import Evaluation, RuleErrors, RuleIssue
from rules.suite import CaseResult, MessageReader, SuiteResult, run_test_suite
from rules.watch import RuleWatcher

__all__ = [
    "CaseResult",
    "Evaluation",
    "MessageFacts",
    "MessageReader",
    "RuleErrors",
    "RuleIssue",
    "RuleSet",
    "RuleWatcher",
    "SuiteResult",
    "apply_fallback",
    "check",
    "compact_explanation",
    "diff_decisions",
    "load",
    "run_test_suite",
]
