"""What the router decides about one message: data, acted on later by delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from rules.facts import MessageFacts


class Action(StrEnum):
    ROUTE = "route"
    HOLD = "hold"


# Everything a decision may look at: the message and where it arrived (the rules' own input type).
Facts = MessageFacts


@dataclass(frozen=True)
class Decision:
    action: Action
    decided_by: str
    recipients: tuple[str, ...] = ()
    rule: str | None = None
    reason: str | None = None
    explanation: dict[str, Any] = field(default_factory=dict)


class Decider(Protocol):
    """Decides one message. SHALL NOT write anything; SHALL explain itself in `Decision.explanation`."""

    def decide(self, facts: Facts) -> Decision: ...
