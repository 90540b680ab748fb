"""The linear scorers under the calibrator: a class-weighted linear SVM and a complement naive Bayes.

Both are reduced to one dense weight matrix so that scoring a message is a single sparse-dense
product, without scikit-learn's per-call validation (which dominates the cost of one message).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

# Score given to a class the fold's model never saw: below any margin a LinearSVC produces in practice.
_ABSENT_SCORE = -2.0
# Naive Bayes log-likelihood gaps are clipped and scaled to the SVM margins' range for the calibrator.
_NB_CLIP = 20.0
_NB_SCALE = 10.0


@dataclass(eq=False)
class Heads:
    """Scores = X @ weights + bias per scorer: k SVM margins, then k naive-Bayes log-likelihoods.

    The two weight blocks stay separate (float32): joining them would copy the largest arrays of
    the model once more during training.
    """

    svm_weights: np.ndarray  # (n_features, k) float32
    svm_bias: np.ndarray  # (k,) float32
    nb_weights: np.ndarray  # (n_features, k) float32
    nb_present: np.ndarray  # (k,) bool — classes the naive Bayes part was trained on

    @property
    def n_classes(self) -> int:
        return int(self.svm_bias.shape[0])

    def scores(self, features: sp.csr_matrix) -> np.ndarray:
        """The calibrator's input: SVM margins and normalized naive-Bayes log-likelihood gaps."""
        svm = np.asarray(features @ self.svm_weights) + self.svm_bias
        nb = np.asarray(features @ self.nb_weights)
        nb = np.where(self.nb_present, nb, -np.inf)
        nb = np.maximum(nb - nb.max(axis=1, keepdims=True), -_NB_CLIP) / _NB_SCALE
        return np.hstack([svm, nb]).astype(np.float64)

    def svm_margins(self, features: sp.csr_matrix) -> np.ndarray:
        margins: np.ndarray = np.asarray(features @ self.svm_weights) + self.svm_bias
        return margins


@dataclass(eq=False)
class SvmPart:
    """One class-weighted LinearSVC as dense (n_features, k) weights; absent classes get no say."""

    weights: np.ndarray
    bias: np.ndarray
    present: np.ndarray  # (k,) bool


def fit_svm(features: sp.csr_matrix, y: np.ndarray, n_classes: int, *, c: float) -> SvmPart:
    weights = np.zeros((features.shape[1], n_classes), dtype=np.float32)
    bias = np.full(n_classes, _ABSENT_SCORE, dtype=np.float32)
    present = np.unique(y)
    svc = LinearSVC(C=c, class_weight="balanced", tol=1e-2, max_iter=2000, random_state=0)
    with warnings.catch_warnings():
        # A few unconverged dual coordinates move no decision here; the calibrator absorbs the rest.
        warnings.simplefilter("ignore", ConvergenceWarning)
        svc.fit(features, y)
    coef = svc.coef_.astype(np.float32)
    intercept = svc.intercept_.astype(np.float32)
    if len(present) == 2:
        # Binary LinearSVC keeps one hyperplane: the first class scores its negation.
        coef = np.vstack([-coef, coef])
        intercept = np.concatenate([-intercept, intercept])
    weights[:, present] = coef.T
    bias[present] = intercept
    mask = np.zeros(n_classes, dtype=bool)
    mask[present] = True
    return SvmPart(weights=weights, bias=bias, present=mask)


class SvmAverage:
    """The mean of the fold models, per class over the folds that saw it (a bagged SVM), summed as
    the folds come so that only one fold model is in memory at a time.

    Reusing the cross-validation models saves a full refit, and their scores have the scale the
    calibrator was fitted on.
    """

    def __init__(self) -> None:
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self._seen: np.ndarray | None = None

    def add(self, part: SvmPart) -> None:
        if self._weights is None or self._bias is None or self._seen is None:
            self._weights = np.zeros_like(part.weights)
            self._bias = np.zeros_like(part.bias)
            self._seen = np.zeros(part.bias.shape[0], dtype=np.int64)
        self._weights[:, part.present] += part.weights[:, part.present]
        self._bias += np.where(part.present, part.bias, 0.0).astype(np.float32)
        self._seen += part.present

    def result(self) -> SvmPart:
        if self._weights is None or self._bias is None or self._seen is None:
            raise ValueError("no fold model was added")
        divisor = np.maximum(self._seen, 1).astype(np.float32)
        self._weights /= divisor
        bias = np.where(self._seen > 0, self._bias / divisor, _ABSENT_SCORE).astype(np.float32)
        return SvmPart(weights=self._weights, bias=bias, present=self._seen > 0)


def fit_nb(features: sp.csr_matrix, y: np.ndarray, n_classes: int, *, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """A complement naive Bayes (scikit-learn's ComplementNB, norm=False) as (n_features, k) float32
    weights and the mask of classes it saw, computed in float32 to keep training memory small."""
    present = np.unique(y)
    indicator = sp.csr_matrix((np.ones(len(y), dtype=np.float32), (y, np.arange(len(y)))),
                              shape=(n_classes, len(y)))
    counts = (indicator @ features).toarray().astype(np.float32, copy=False)[present]
    complement = counts.sum(axis=0, keepdims=True) + np.float32(alpha) - counts
    del counts
    complement /= complement.sum(axis=1, keepdims=True)
    np.log(complement, out=complement)
    weights = np.zeros((features.shape[1], n_classes), dtype=np.float32)
    weights[:, present] = -complement.T
    mask = np.zeros(n_classes, dtype=bool)
    mask[present] = True
    return weights, mask


def combine(svm: SvmPart, features: sp.csr_matrix, y: np.ndarray, *, nb_alpha: float) -> Heads:
    """Adds a complement naive Bayes fitted on `features` to the SVM part (it is cheap to fit)."""
    nb_weights, nb_present = fit_nb(features, y, svm.bias.shape[0], alpha=nb_alpha)
    return Heads(svm_weights=svm.weights, svm_bias=svm.bias, nb_weights=nb_weights, nb_present=nb_present)


def fit_heads(
    features: sp.csr_matrix, y: np.ndarray, n_classes: int, *, svc_c: float, nb_alpha: float
) -> Heads:
    """Fits both scorers on `features` (y holds class indices 0..n_classes-1, maybe not all present)."""
    return combine(fit_svm(features, y, n_classes, c=svc_c), features, y, nb_alpha=nb_alpha)
