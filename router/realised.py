"""Realised precision of automatic routing, from corrections; and the guard that pauses a model that
breaks its promise.

A letter the model routed alone counts as wrong when a person later corrected it (`correct` in
router/correction.py). The pause is written as a trace event without a message (auditable, shared
by every instance through the database) and names the model it pauses: a model trained afterwards
(it learned from the corrections) routes again, with its threshold raised while the pause is recent.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from statistics import NormalDist
from typing import Any

from sqlmodel import col, select

from core.lifecycle import record
from core.notify import Notifier
from core.storage.db import Store
from core.storage.models import Message, RoutingDecision, TraceEvent

log = logging.getLogger(__name__)

WINDOW = timedelta(days=30)
PAUSED = "automation_paused"
# One-sided confidence of the bound that must fall below the target before automation pauses.
PAUSE_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Realised:
    """Letters the model routed alone (in the window, optionally by one model) and how many were corrected."""

    organisation: str
    routed_alone: int
    corrected: int

    @property
    def precision(self) -> float | None:
        return None if self.routed_alone == 0 else 1.0 - self.corrected / self.routed_alone

    def upper_bound(self, confidence: float = PAUSE_CONFIDENCE) -> float | None:
        """One-sided Wilson upper bound: the best precision these corrections leave plausible."""
        n = self.routed_alone
        if n == 0:
            return None
        z = NormalDist().inv_cdf(confidence)
        p = 1.0 - self.corrected / n
        centre = p + z * z / (2 * n)
        margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return min(1.0, (centre + margin) / (1 + z * z / n))


def realised(store: Store, organisation: str, *, since: datetime, model: str | None = None) -> Realised:
    """Counts the organisation's automatic routings since `since` (by `model`, a fingerprint prefix,
    when given) and those a person corrected afterwards."""
    with store.read() as session:
        rows = session.exec(
            select(RoutingDecision)
            .join(Message, col(Message.id) == col(RoutingDecision.message_id))
            .where(Message.organisation_cvr == organisation, col(RoutingDecision.created_at) >= since,
                   # only the model's routings and people's corrections matter: rules' are many
                   col(RoutingDecision.decided_by).in_(("model", "hand")))
            .order_by(col(RoutingDecision.message_id), col(RoutingDecision.id))
        ).all()
    auto: dict[str, bool] = {}  # message id -> corrected since the model routed it
    for row in rows:
        explanation = row.explanation or {}
        if row.decided_by == "model" and row.action == "route" and model in (None, explanation.get("model")):
            auto[row.message_id] = False
        elif row.message_id in auto and (explanation.get("corrected") or {}).get("decided_by") == "model":
            auto[row.message_id] = True
    routed, corrected = len(auto), sum(auto.values())
    return Realised(organisation, routed, corrected)


@dataclass(frozen=True)
class AutomationState:
    """`paused`: why the current model may not route alone (None: it may);
    `raised`: a recent pause of an earlier model — the current one must meet a stricter target."""

    paused: str | None = None
    raised: bool = False


def automation_state(store: Store, organisation: str, model: str | None, *, now: datetime | None = None) -> AutomationState:
    """The organisation's pauses within the window, as they bear on `model`."""
    now = now or datetime.now(timezone.utc)
    with store.read() as session:
        events = session.exec(
            select(TraceEvent)
            .where(col(TraceEvent.message_id).is_(None), TraceEvent.kind == PAUSED,
                   col(TraceEvent.at) >= now - WINDOW)
            .order_by(col(TraceEvent.at).desc(), col(TraceEvent.id).desc())
        ).all()
    mine = [e for e in events if (e.detail or {}).get("organisation") == organisation]
    if not mine:
        return AutomationState()
    for event in mine:
        if (event.detail or {}).get("model") == model:
            return AutomationState(paused=event.reason or "automatic routing paused", raised=True)
    return AutomationState(raised=True)


def review(store: Store, notifier: Notifier, organisation: str, model: str | None, target: float,
           *, now: datetime | None = None) -> str | None:
    """Pause the current model when its corrections show it below `target`; tell the administrators.

    Pauses only when the upper confidence bound of its realised precision is below the target (a
    single unlucky correction among few letters is not proof). Returns the reason when it paused.
    """
    if model is None:
        return None
    now = now or datetime.now(timezone.utc)
    if automation_state(store, organisation, model, now=now).paused:
        return None
    figures = realised(store, organisation, since=now - WINDOW, model=model)
    upper = figures.upper_bound()
    if upper is None or upper >= target:
        return None
    reason = (f"automatic routing paused: {figures.corrected} of {figures.routed_alone} letters the model "
              f"routed alone were corrected (realised precision {figures.precision:.1%}, "
              f"target {target:.0%})")
    detail: dict[str, Any] = {"organisation": organisation, "model": model, "routed_alone": figures.routed_alone,
                              "corrected": figures.corrected, "target": target}
    with store.transaction() as session:
        record(session, None, PAUSED, actor="postbud", reason=reason, detail=detail)
    notifier.notify(organisation, "Automatic routing paused: realised precision below target",
                    f"{reason}. Letters are held for people until a model trained on the corrections "
                    f"replaces this one (it then needs a stricter threshold). See `postbud model show "
                    f"--org {organisation}`.")
    log.warning("automatic routing paused for %s: %d of %d corrected", organisation, figures.corrected,
                figures.routed_alone)
    return reason
