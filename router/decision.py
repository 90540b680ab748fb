"""What the router decides about one message: data, acted on later by delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from postbud.domain import NormalizedMessage


class Action(StrEnum):
    ROUTE = "route"
    HOLD = "hold"


@dataclass(frozen=True)
class Facts:
    """Everything a decision may look at: the message and where it came from."""

    message: NormalizedMessage
    organisation: str
    mailbox: str
    provider: str
    received_at: datetime


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
