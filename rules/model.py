"""The rules package's data: check issues, the typed error, compiled rules and the evaluation result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rules.conditions import Node

ActionName = Literal["route", "hold"]
NO_RULE_REASON = "no rule matched"


@dataclass(frozen=True, order=True)
class RuleIssue:
    """One problem found in a rule directory, at a 1-based line and column of a file."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class RuleErrors(Exception):
    """The rule directory has problems; `issues` lists every one of them (the rules are not usable)."""

    def __init__(self, issues: Sequence[RuleIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class Target:
    """One `route` entry: a recipient/group id, or a `${capture}` resolved at evaluation time."""

    id: str | None = None
    capture: str | None = None
    # The capture's lookup table (casefolded key -> ids); None means the capture is itself an id.
    lookup: dict[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Rule:
    """A compiled `[[rule]]`: scope, condition tree and action, with where it was written."""

    name: str
    file: str
    line: int
    when: Node
    route: tuple[Target, ...] = ()
    hold: str | None = None
    tags: tuple[str, ...] = ()
    priority: int | None = None
    continue_: bool = False
    organisations: frozenset[str] | None = None
    mailboxes: frozenset[str] | None = None
    providers: frozenset[str] | None = None

    @cached_property
    def at(self) -> str:
        """`file:line` of the rule's `[[rule]]` header, as the explanation and check report it."""
        return f"{self.file}:{self.line}"

    def in_scope(self, organisation: str, mailbox: str, provider: str) -> bool:
        """Whether the rule applies where a message arrived (mailbox, provider: case-folded)."""
        return (
            (self.organisations is None or organisation in self.organisations)
            and (self.mailboxes is None or mailbox in self.mailboxes)
            and (self.providers is None or provider in self.providers)
        )

    @property
    def decides(self) -> bool:
        """Whether matching this rule decides the message (routes or holds), not only tags it."""
        return bool(self.route) or self.hold is not None


@dataclass(frozen=True)
class Evaluation:
    """The rules' answer for one message, with a JSON-ready explanation of how it was reached.

    `rule` is the name of the first matching rule that routes or holds, or None when no rule decided
    (then `action` is "hold" with reason "no rule matched" and the organisation's fallback applies;
    see `rules.decisions.apply_fallback`). `recipients` is empty unless `action` is "route".
    """

    action: ActionName
    recipients: tuple[str, ...]
    rule: str | None
    tags: tuple[str, ...] = ()
    priority: int = 0
    reason: str | None = None
    matched_rules: tuple[str, ...] = ()
    explanation: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def decided(self) -> bool:
        """Whether a rule decided the message (False: the organisation fallback applies)."""
        return self.rule is not None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        """Rebuild an evaluation from `to_json()` output (e.g. a stored decision, for replay)."""
        action = data["action"]
        if action not in ("route", "hold"):
            raise ValueError(f"action must be 'route' or 'hold', not {action!r}")
        return cls(
            action=action,
            recipients=tuple(data.get("recipients") or ()),
            rule=data.get("rule"),
            tags=tuple(data.get("tags") or ()),
            priority=int(data.get("priority") or 0),
            reason=data.get("reason"),
            matched_rules=tuple(data.get("matched_rules") or ()),
            explanation=dict(data.get("explanation") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        """The evaluation as one JSON-ready object (what `postbud rules test --json` prints)."""
        return {
            "action": self.action,
            "recipients": list(self.recipients),
            "rule": self.rule,
            "reason": self.reason,
            "tags": list(self.tags),
            "priority": self.priority,
            "matched_rules": list(self.matched_rules),
            "explanation": self.explanation,
        }
