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
    evidence_from,
    fit_calibrator,
    out_of_fold_scores,
    recent_probabilities,
)
from router.suggester.examples import Example, Suggestion, fingerprint
from router.suggester.features import Familiarity, FeatureSpace
from router.suggester.heads import Heads, combine, fit_heads
from router.suggester.settings import SuggesterSettings

__all__ = ["Suggester", "SuggesterSettings", "TrainedModel"]

log = logging.getLogger(__name__)

_EMPTY_EVIDENCE = Evidence(confidence=np.zeros(0), correct=np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class Judgement:
    """The model's answer for one letter: ranked suggestions, the one to route alone (or None) and why not."""

    suggestions: list[Suggestion]
    chosen: Suggestion | None
    why_not: str | None  # None exactly when `chosen` is set


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
    evidence_size: int = 0  # letters in the most recent period (automatable predictions or not)

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

    def suggest(
        self, example: Example, *, allowed: frozenset[str] | None = None
    ) -> list[Suggestion]:
        """The top-k recipients (k from settings), most probable first; only `allowed` ones if given."""
        return self.suggest_many([example], allowed=allowed)[0]

    def suggest_many(
        self, examples: Sequence[Example], *, allowed: frozenset[str] | None = None
    ) -> list[list[Suggestion]]:
        probabilities = self.probabilities(examples)
        if probabilities.shape[1] == 0:
            return [[] for _ in examples]
        if allowed is not None:
            # A revoked or unapproved recipient is never named, not even as a runner-up.
            keep = np.array([c in allowed for c in self.classes])
            probabilities = np.where(keep, probabilities, -1.0)
        k = min(self.settings.top_k, probabilities.shape[1])
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [
            [Suggestion(self.classes[i], float(row[i])) for i in order if row[i] >= 0.0]
            for row, order in zip(probabilities, top, strict=True)
        ]

    @property
    def effective_threshold(self) -> float:
        """The threshold, never below the target probability itself (inf: never route alone)."""
        return max(self.threshold, self.settings.target_precision)

    def automatic(self, suggestions: Sequence[Suggestion]) -> Suggestion | None:
        """The best suggestion when its probability alone allows routing without a person.

        This looks at probabilities only; `judge` also holds letters unlike anything placed before
        and recipients an administrator keeps for people: the router uses `judge`.
        """
        if not suggestions or not self.can_automate:
            return None
        best = suggestions[0]
        if best.label in self.automatable and best.probability >= self.effective_threshold:
            return best
        return None

    def familiarity(self, example: Example) -> Familiarity:
        return self.space.familiarity(example) if self.space is not None else Familiarity(False, 0.0)

    def is_novel(self, familiarity: Familiarity) -> bool:
        """Unknown sender and mostly unknown words: nothing placed before vouches for this letter."""
        return not familiarity.sender_known and familiarity.known_share < self.settings.novelty_min_known

    def judge(
        self,
        example: Example,
        *,
        allowed: frozenset[str] | None = None,
        never_alone: frozenset[str] = frozenset(),
        stricter: float | None = None,
    ) -> Judgement:
        """Suggestions for one letter and whether to route it alone. Only `allowed` recipients are
        named (None: all); `never_alone` are recipients an administrator keeps for people (they are
        still suggested). `stricter` raises the precision target (after a pause for corrections)."""
        suggestions = self.suggest(example, allowed=allowed)
        cut = self.effective_threshold if stricter is None else max(
            self.effective_threshold, self.threshold_for(stricter))
        if not self.can_automate:
            return Judgement(suggestions, None, self.reason or "the model may not route alone")
        if not suggestions:
            return Judgement(suggestions, None, "no recipient to suggest")
        best = suggestions[0]
        if best.label not in self.automatable:
            return Judgement(suggestions, None, f"too few placements with {best.label} to route to it alone")
        if best.probability < cut:
            shown = "(the raised target is not shown)" if math.isinf(cut) else f"{cut:.1%}"
            return Judgement(suggestions, None, f"{best.probability:.1%} is below the threshold {shown}")
        if best.label in never_alone:
            return Judgement(suggestions, None, f"an administrator keeps {best.label} for a person")
        familiar = self.familiarity(example)
        if self.is_novel(familiar):
            return Judgement(suggestions, None, f"unlike anything placed before: unknown sender and "
                                                f"{familiar.known_share:.0%} of its words known")
        return Judgement(suggestions, best, None)

    def automatic_mask(
        self, examples: Sequence[Example], probabilities: np.ndarray, *, target: float | None = None
    ) -> np.ndarray:
        """For a batch (evaluation): True where `judge` would route alone (at the thresholds for
        `target`, default the model's own)."""
        cut = self.effective_threshold if target is None else self.threshold_for(target)
        if not math.isfinite(cut) or probabilities.shape[1] == 0:
            return np.zeros(len(examples), dtype=bool)
        automatable = np.array([c in self.automatable for c in self.classes])
        mask = (probabilities.max(axis=1) >= cut) & automatable[probabilities.argmax(axis=1)]
        for i in np.flatnonzero(mask).tolist():
            mask[i] = not self.is_novel(self.familiarity(examples[i]))
        routed: np.ndarray = mask
        return routed

    def threshold_for(self, target_precision: float) -> float:
        """The threshold for another precision target, from the same evidence (never below the target)."""
        if not self.calibrated or len(self.automatable) < self.settings.min_classes:
            return math.inf
        return max(self.evidence.threshold_for(target_precision), target_precision)

    @property
    def n_evidence(self) -> int:
        """How many letters of the most recent period the threshold was chosen on."""
        return int(self.evidence_size)

    @property
    def cv_coverage(self) -> float:
        """Share of the most recent period's letters the threshold would have routed alone."""
        if not self.can_automate or self.evidence_size == 0:
            return 0.0
        return float(np.sum(self.evidence.confidence >= self.effective_threshold) / self.evidence_size)

    @property
    def cv_precision(self) -> float | None:
        return self.evidence.precision_at(self.effective_threshold) if self.can_automate else None

    @property
    def cv_precision_lower(self) -> float | None:
        """What the evidence shows at the threshold: the lower confidence bound on precision."""
        return self.evidence.lower_bound_at(self.effective_threshold) if self.can_automate else None


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
        scores, mean_svm = out_of_fold_scores(
            features, y, folds, len(classes), svc_c=s.svc_c, nb_alpha=s.nb_alpha
        )
        recent, recent_probs = recent_probabilities(
            features, scores, y, folds, periods=s.evidence_periods, c=s.calibration_c,
            svc_c=s.svc_c, nb_alpha=s.nb_alpha,
        )
        automatable_mask = np.array([c in automatable for c in classes])
        evidence = evidence_from(
            recent_probs, y[recent], automatable_mask, bound_confidence=s.bound_confidence
        )
        # Never below the target probability itself, whatever the evidence allows.
        threshold = max(evidence.threshold_for(s.target_precision), s.target_precision)
        reason: str | None = None
        if not math.isfinite(threshold):
            reason = (
                f"the {int(recent.sum())} most recent of {len(labelled)} placements do not show "
                f"{s.target_precision:.0%} precision (lower {s.bound_confidence:.0%} bound) at any "
                f"threshold: every message is held"
            )
        calibrator = fit_calibrator(scores, y, c=s.calibration_c)
        heads = combine(mean_svm, features, y, nb_alpha=s.nb_alpha)
        model = replace(
            untrained,
            threshold=threshold,
            reason=reason,
            calibrated=True,
            space=space,
            heads=heads,
            calibrator=calibrator,
            evidence=evidence,
            evidence_size=int(recent.sum()),
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
