"""Training (`Suggester.train`) and the trained model that suggests recipients and says when to automate."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from router.suggester.calibration import (
    Calibrator,
    Evidence,
    assign_folds,
    cross_fitted_probabilities,
    evidence_from,
    fit_calibrator,
    out_of_fold_scores,
)
from router.suggester.examples import Example, Suggestion, fingerprint
from router.suggester.features import FeatureSpace
from router.suggester.heads import Heads, average_svms, combine, fit_heads
from router.suggester.settings import SuggesterSettings

__all__ = ["Suggester", "SuggesterSettings", "TrainedModel"]

log = logging.getLogger(__name__)

_EMPTY_EVIDENCE = Evidence(confidence=np.zeros(0), correct=np.zeros(0, dtype=bool))


@dataclass(eq=False)
class TrainedModel:
    """What training produced. `suggest` ranks recipients; `automatic` says whether to route alone.

    `threshold` is math.inf when the model must never automate; `reason` then says why (cold
    start, too few examples per recipient, precision target not reachable). The last four fields
    are the fitted internals: read them only through the methods.
    """

    classes: tuple[str, ...]
    threshold: float
    reason: str | None
    fingerprint: str
    settings: SuggesterSettings
    n_examples: int
    automatable: frozenset[str]
    calibrated: bool
    trained_at: float = field(default_factory=time.time)
    train_seconds: float = 0.0
    space: FeatureSpace | None = field(default=None, repr=False)
    heads: Heads | None = field(default=None, repr=False)
    calibrator: Calibrator | None = field(default=None, repr=False)
    evidence: Evidence = field(default=_EMPTY_EVIDENCE, repr=False)

    @property
    def can_automate(self) -> bool:
        return math.isfinite(self.threshold)

    def probabilities(self, examples: Sequence[Example]) -> np.ndarray:
        """Rows of class probabilities (columns follow `classes`); empty columns if nothing learned."""
        if self.space is None or self.heads is None:
            if len(self.classes) == 1:
                # The only recipient ever confirmed is the only candidate (cold start: held anyway).
                return np.ones((len(examples), 1), dtype=np.float64)
            return np.zeros((len(examples), 0))
        features = self.space.transform(examples)
        if self.calibrator is not None:
            return self.calibrator.probabilities(self.heads.scores(features))
        # Cold start: a softmax of the SVM margins ranks well but its values are not calibrated.
        margins = self.heads.svm_margins(features).astype(np.float64)
        margins -= margins.max(axis=1, keepdims=True)
        odds = np.exp(margins)
        probabilities: np.ndarray = odds / odds.sum(axis=1, keepdims=True)
        return probabilities

    def suggest(self, example: Example) -> list[Suggestion]:
        """The top-k recipients (k from settings), most probable first."""
        return self.suggest_many([example])[0]

    def suggest_many(self, examples: Sequence[Example]) -> list[list[Suggestion]]:
        probabilities = self.probabilities(examples)
        if probabilities.shape[1] == 0:
            return [[] for _ in examples]
        k = min(self.settings.top_k, probabilities.shape[1])
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [
            [Suggestion(self.classes[i], float(row[i])) for i in order]
            for row, order in zip(probabilities, top, strict=True)
        ]

    def automatic(self, suggestions: Sequence[Suggestion]) -> Suggestion | None:
        """The suggestion to route without a person, or None to hold the message for one."""
        if not suggestions or not self.can_automate:
            return None
        best = suggestions[0]
        if best.label in self.automatable and best.probability >= self.threshold:
            return best
        return None

    def threshold_for(self, target_precision: float) -> float:
        """The threshold for another precision target, from the same cross-validated evidence."""
        if not self.calibrated or len(self.automatable) < self.settings.min_classes:
            return math.inf
        return self.evidence.threshold_for(target_precision)

    @property
    def cv_coverage(self) -> float:
        """Share of training examples (out of fold) that the threshold would have routed alone."""
        if not self.can_automate or self.n_examples == 0:
            return 0.0
        return float(np.sum(self.evidence.confidence >= self.threshold) / self.n_examples)

    @property
    def cv_precision(self) -> float | None:
        return self.evidence.precision_at(self.threshold) if self.can_automate else None


class Suggester:
    """Trains models. `train` is pure and synchronous: run it in a worker, never on the event loop."""

    def __init__(self, settings: SuggesterSettings | None = None) -> None:
        self.settings = settings or SuggesterSettings()

    def train(self, examples: Sequence[Example]) -> TrainedModel:
        """Learns from the labelled examples, given oldest first (unlabelled ones are ignored)."""
        started = time.perf_counter()
        labelled = [e for e in examples if e.label]
        s = self.settings
        counts = Counter(e.label for e in labelled)
        classes = tuple(sorted(label for label in counts if label))
        automatable = frozenset(c for c in classes if counts[c] >= s.min_class_examples)
        untrained = TrainedModel(
            classes=classes,
            threshold=math.inf,
            reason=f"cold start: {len(classes)} recipient(s) learned, need at least {s.min_classes}",
            fingerprint=fingerprint(labelled),
            settings=s,
            n_examples=len(labelled),
            automatable=automatable,
            calibrated=False,
        )
        if len(classes) < 2:
            return untrained

        index = {label: i for i, label in enumerate(classes)}
        y = np.array([index[e.label] for e in labelled if e.label], dtype=np.int64)
        space = FeatureSpace(s)
        features = space.fit_transform(labelled)
        cold = self._cold_reason(len(labelled), len(automatable))
        if cold is not None:
            heads = fit_heads(features, y, len(classes), svc_c=s.svc_c, nb_alpha=s.nb_alpha)
            log.info("suggester trained without automation: %s", cold)
            return replace(
                untrained,
                reason=cold,
                space=space,
                heads=heads,
                train_seconds=time.perf_counter() - started,
            )

        folds = assign_folds(y, s.cv_folds, chronological=s.chronological_folds)
        scores, fold_svms = out_of_fold_scores(
            features, y, folds, len(classes), svc_c=s.svc_c, nb_alpha=s.nb_alpha
        )
        oof = cross_fitted_probabilities(scores, y, folds, c=s.calibration_c)
        automatable_mask = np.array([c in automatable for c in classes])
        evidence = evidence_from(oof, y, automatable_mask)
        threshold = evidence.threshold_for(s.target_precision)
        reason: str | None = None
        if not math.isfinite(threshold):
            reason = (
                f"precision target {s.target_precision:.0%} not reached in cross-validation "
                f"on {len(labelled)} examples: every message is held"
            )
        calibrator = fit_calibrator(scores, y, c=s.calibration_c)
        heads = combine(average_svms(fold_svms), features, y, nb_alpha=s.nb_alpha)
        model = replace(
            untrained,
            threshold=threshold,
            reason=reason,
            calibrated=True,
            space=space,
            heads=heads,
            calibrator=calibrator,
            evidence=evidence,
            train_seconds=time.perf_counter() - started,
        )
        log.info(
            "suggester trained: %d examples, %d recipients, threshold %.4f, cv coverage %.3f in %.1fs",
            len(labelled),
            len(classes),
            threshold,
            model.cv_coverage,
            model.train_seconds,
        )
        return model

    def _cold_reason(self, n_examples: int, n_automatable: int) -> str | None:
        s = self.settings
        if n_examples < s.min_examples:
            return f"cold start: {n_examples} confirmed examples, automation needs {s.min_examples}"
        if n_automatable < s.min_classes:
            return (
                f"cold start: {n_automatable} recipient(s) with {s.min_class_examples}+ examples, "
                f"automation needs {s.min_classes}"
            )
        return None
