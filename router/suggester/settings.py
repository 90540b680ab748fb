"""Tunable knobs of the suggester, read once into a frozen, validated object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SuggesterSettings:
    """How the suggester learns and when it may route alone.

    Defaults are the values measured best on the 20 Newsgroups corpus (see bench/ml_bench.py).
    """

    target_precision: float = 0.99
    # The threshold must *show* the target: the one-sided lower bound at this confidence reaches it.
    bound_confidence: float = 0.95
    # The threshold is chosen on the most recent `evidence_periods` of the `cv_folds` periods, each
    # predicted by a model trained on older periods only (forward in time, as production is). One
    # period: its model is the nearest to the final one (on 20 Newsgroups split by time two
    # periods, the older predicted by a model of 60 % of the data, were needlessly pessimistic).
    evidence_periods: int = 1
    # A letter from a never-placed sender is held when fewer than this share of its distinct words
    # were ever seen in a placed letter (unlike anything placed before: a person decides).
    novelty_min_known: float = 0.5
    min_examples: int = 50
    min_classes: int = 2
    min_class_examples: int = 10
    cv_folds: int = 5
    # Examples arrive oldest first; cross-validate on contiguous periods (see calibration.assign_folds).
    chronological_folds: bool = True
    top_k: int = 3
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    char_body_chars: int = 0
    body_chars: int = 20_000
    min_df: int = 2
    max_df: float = 0.5
    # Sender and other metadata: at 0.5 a known sender writing off-topic was routed at 99.99 % and
    # wrong; 0.25 keeps accuracy (0.896 on 20 Newsgroups split by time) with fewer confident errors.
    meta_weight: float = 0.25
    char_weight: float = 0.5
    svc_c: float = 0.5
    nb_alpha: float = 0.03
    calibration_c: float = 1.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.target_precision < 1.0:
            raise ValueError(f"target_precision must be in [0.5, 1), got {self.target_precision}")
        if not 0.5 <= self.bound_confidence < 1.0:
            raise ValueError(f"bound_confidence must be in [0.5, 1), got {self.bound_confidence}")
        if not 0.0 <= self.novelty_min_known <= 1.0:
            raise ValueError(f"novelty_min_known must be in [0, 1], got {self.novelty_min_known}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be at least 2, got {self.cv_folds}")
        if not 1 <= self.evidence_periods < self.cv_folds:
            raise ValueError(
                f"evidence_periods must be in [1, cv_folds), got {self.evidence_periods}"
            )
        if self.min_class_examples < self.cv_folds:
            raise ValueError(
                f"min_class_examples ({self.min_class_examples}) must be at least cv_folds "
                f"({self.cv_folds}) so every automatable class is seen in each fold"
            )
        if self.min_classes < 2:
            raise ValueError(f"min_classes must be at least 2, got {self.min_classes}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        for name in ("word_ngrams", "char_ngrams"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ValueError(
                    f"{name} must be (low, high) with 1 <= low <= high, got {(low, high)}"
                )
