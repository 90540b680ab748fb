"""Scores the suggester on a labelled corpus: accuracy, macro-F1, automation coverage, timings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from router.suggester.dataset import SplitBy, read_records, split_records
from router.suggester.errors import DatasetError
from router.suggester.examples import Example
from router.suggester.model import Suggester, TrainedModel
from router.suggester.settings import SuggesterSettings

log = logging.getLogger(__name__)

# Per-message latency is measured one message at a time, as the daemon calls it, on this many.
_LATENCY_SAMPLE = 300
Progress = Callable[[str], None]


def coverage(
    model: TrainedModel,
    examples: Sequence[Example],
    probabilities: np.ndarray,
    truth: np.ndarray,
    target: float,
) -> tuple[float, float | None]:
    """(share of messages routed alone, precision realised among them) at the threshold the model
    chose for `target` on its training data, with every other check the router applies (novelty)."""
    predicted = probabilities.argmax(axis=1)
    routed = model.automatic_mask(examples, probabilities, target=target)
    if not routed.any():
        return 0.0, None
    return float(routed.mean()), float(np.mean(predicted[routed] == truth[routed]))


def score(
    model: TrainedModel, test: Sequence[Example], *, train_seconds: float, n_train: int
) -> dict[str, float | int | None]:
    """The evaluation report of an already trained model on `test`."""
    index = {label: i for i, label in enumerate(model.classes)}
    truth = np.array([index.get(str(e.label), -1) for e in test])
    probabilities = model.probabilities(test)
    predicted = probabilities.argmax(axis=1)
    cov99, prec99 = coverage(model, test, probabilities, truth, 0.99)
    cov95, prec95 = coverage(model, test, probabilities, truth, 0.95)
    sample = list(test[:_LATENCY_SAMPLE])
    started = time.perf_counter()
    for example in sample:
        model.suggest(example)
    predict_ms = (time.perf_counter() - started) * 1000 / max(1, len(sample))
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "macro_f1": float(
            f1_score(truth, predicted, average="macro", labels=np.unique(truth), zero_division=0)
        ),
        "coverage_at_99": cov99,
        "coverage_at_95": cov95,
        "precision_at_99": prec99,
        "precision_at_95": prec95,
        "train_seconds": train_seconds,
        "predict_ms": predict_ms,
        "n_train": n_train,
        "n_test": len(test),
    }


def evaluate(
    dataset_path: str | Path,
    *,
    settings: SuggesterSettings | None = None,
    progress: Progress | None = None,
    by: SplitBy = "time",
) -> dict[str, float | int | None]:
    """Trains on the corpus's train split and scores its test split (or its most recent 20 %).

    Thresholds come from the train split only; the test split is never used to choose them.
    `precision_at_*` is the precision realised on the test split at those thresholds, None when
    nothing would be routed at that target.
    """
    say = progress or (lambda _text: None)
    path = Path(dataset_path)
    say(f"reading {path.name}")
    split = split_records(read_records(path), by=by)
    if not split.train or not split.test:
        raise DatasetError(f"{path}: needs both training and test messages")
    if split.held_out:
        say(f"no test split in the file: holding out {len(split.test)} messages "
            f"({'the most recent 20 % of each label' if by == 'time' else 'a hashed 20 % of each label'})")
    say(f"training on {len(split.train)} messages")
    started = time.perf_counter()
    model = Suggester(settings).train(split.train)
    train_seconds = time.perf_counter() - started
    say(f"trained in {train_seconds:.1f}s; scoring {len(split.test)} messages")
    return score(model, split.test, train_seconds=train_seconds, n_train=len(split.train))
