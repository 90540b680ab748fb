"""What an administrator asks of a model: its threshold, evidence, coverage, realised precision, and
why it is not routing alone (`postbud model show`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from router.learning import Models
from router.realised import WINDOW, realised


@dataclass(frozen=True)
class ModelStatus:
    organisation: str
    trained_at: str | None  # ISO 8601, None without a model
    examples: int
    recipients: int
    threshold: float | None  # None: never routes alone
    target_precision: float
    evidence: int  # most recent letters the threshold was chosen on
    coverage: float  # share of them routed alone at the threshold
    precision: float | None  # realised among them
    precision_lower: float | None  # its lower confidence bound (what the evidence shows)
    routed_alone: int  # last 30 days, every model of the organisation
    corrected: int
    realised_precision: float | None
    paused: bool
    automating: bool
    why_not: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def model_status(models: Models, organisation: str, *, target: float, now: datetime | None = None) -> ModelStatus:
    now = now or datetime.now(timezone.utc)
    model = models.get(organisation)
    figures = realised(models.store, organisation, since=now - WINDOW)
    if model is None:
        return ModelStatus(organisation, None, 0, 0, None, target, 0, 0.0, None, None, figures.routed_alone,
                           figures.corrected, figures.precision, False, False,
                           "no model trained yet (`postbud model train`, or the daemon's hourly training)")
    state = models.state(organisation, fresh=True)
    threshold = model.effective_threshold
    why_not = state.paused or model.reason
    return ModelStatus(
        organisation=organisation,
        trained_at=datetime.fromtimestamp(model.trained_at, timezone.utc).isoformat(timespec="seconds"),
        examples=model.n_examples,
        recipients=len(model.classes),
        threshold=None if math.isinf(threshold) else round(threshold, 6),
        target_precision=model.settings.target_precision,
        evidence=model.evidence_size,
        coverage=round(model.cv_coverage, 4),
        precision=model.cv_precision,
        precision_lower=model.cv_precision_lower,
        routed_alone=figures.routed_alone,
        corrected=figures.corrected,
        realised_precision=figures.precision,
        paused=state.paused is not None,
        automating=why_not is None,
        why_not=why_not,
    )
