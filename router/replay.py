"""What-if: run a candidate rule set over stored messages and report what would change. Writes nothing."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from core import codec
from core.storage.db import Store
from core.storage.models import Attachment, Mailbox, Message, RoutingDecision
from router.decision import Decider, Decision, Facts
from rules import Evaluation, diff_decisions


@dataclass
class ReplayReport:
    examined: int = 0
    by_organisation: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    changes: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "organisations": {org: dict(counts) for org, counts in sorted(self.by_organisation.items())},
            "changes": self.changes,
        }


def _as_evaluation(action: str, recipients: list[str] | tuple[str, ...], rule: str | None) -> Evaluation:
    # A stored decision's action is "route" or "hold" (router.decision.Action).
    return Evaluation(action="route" if action == "route" else "hold", recipients=tuple(recipients), rule=rule)


def replay(store: Store, decider: Decider, *, since: datetime, until: datetime | None = None,
           batch_size: int = 200) -> ReplayReport:
    """Compare each stored message's last decision with what `decider` would decide now."""
    report = ReplayReport()
    last_received: datetime | None = None
    last_id = ""
    while True:
        with store.read() as session:
            query = (
                select(Message, Mailbox.name)
                .join(Mailbox, col(Mailbox.id) == col(Message.mailbox_id))
                .where(col(Message.received_at) >= since, col(Message.content).is_not(None))
                .order_by(col(Message.received_at), col(Message.id))
                .limit(batch_size)
            )
            if until is not None:
                query = query.where(col(Message.received_at) < until)
            if last_received is not None:
                query = query.where(
                    (col(Message.received_at) > last_received)
                    | ((col(Message.received_at) == last_received) & (col(Message.id) > last_id))
                )
            rows = list(session.exec(query))
            if not rows:
                return report
            for message, mailbox_name in rows:
                decision = session.exec(
                    select(RoutingDecision)
                    .where(RoutingDecision.message_id == message.id)
                    .order_by(col(RoutingDecision.created_at).desc(), col(RoutingDecision.id).desc())
                ).first()
                if decision is None:
                    continue
                attachments = list(session.exec(select(Attachment).where(Attachment.message_id == message.id)))
                facts = Facts(codec.unseal(store.vault, message, attachments), message.organisation_cvr,
                              mailbox_name, message.provider, message.received_at)
                _compare(report, message, decision, decider.decide(facts))
            last_received, last_id = rows[-1][0].received_at, rows[-1][0].id


def _compare(report: ReplayReport, message: Message, old: RoutingDecision, new: Decision) -> None:
    report.examined += 1
    change = diff_decisions(
        _as_evaluation(old.action, old.recipients, old.rule),
        _as_evaluation(new.action.value, new.recipients, new.rule),
    )
    counts = report.by_organisation[message.organisation_cvr]
    counts[change or "unchanged"] += 1
    if change:
        report.changes.append({
            "id": message.id,
            "organisation": message.organisation_cvr,
            "title": message.title,
            "change": change,
            "before": {"action": old.action, "recipients": old.recipients, "rule": old.rule,
                       "decided_by": old.decided_by},
            "after": {"action": new.action.value, "recipients": list(new.recipients), "rule": new.rule,
                      "decided_by": new.decided_by},
        })
