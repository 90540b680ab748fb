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
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

# Score given to a class the fold's model never saw: below any margin a LinearSVC produces in practice.
_ABSENT_SCORE = -2.0
# Naive Bayes log-likelihood gaps are clipped and scaled to the SVM margins' range for the calibrator.
_NB_CLIP = 20.0
_NB_SCALE = 10.0


@dataclass(eq=False)
class Heads:
    """Scores = X @ weights + bias; columns: k SVM margins, then k naive-Bayes log-likelihoods."""

    weights: np.ndarray  # (n_features, 2k) float32
    bias: np.ndarray  # (2k,) float32
    nb_present: np.ndarray  # (k,) bool — classes the naive Bayes part was trained on

    @property
    def n_classes(self) -> int:
        return int(self.bias.shape[0] // 2)

    def scores(self, features: sp.csr_matrix) -> np.ndarray:
        """The calibrator's input: SVM margins and normalized naive-Bayes log-likelihood gaps."""
        raw = np.asarray(features @ self.weights) + self.bias
        k = self.n_classes
        svm, nb = raw[:, :k], raw[:, k:]
        nb = np.where(self.nb_present, nb, -np.inf)
        nb = np.maximum(nb - nb.max(axis=1, keepdims=True), -_NB_CLIP) / _NB_SCALE
        return np.hstack([svm, nb]).astype(np.float64)

    def svm_margins(self, features: sp.csr_matrix) -> np.ndarray:
        k = self.n_classes
        margins: np.ndarray = np.asarray(features @ self.weights[:, :k]) + self.bias[:k]
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


def average_svms(parts: list[SvmPart]) -> SvmPart:
    """The mean of the fold models, per class over the folds that saw it (a bagged SVM).

    Reusing the cross-validation models saves a full refit, and their scores have the scale the
    calibrator was fitted on.
    """
    seen = np.sum([p.present for p in parts], axis=0)
    divisor = np.maximum(seen, 1).astype(np.float32)
    weights = np.sum([p.weights * p.present for p in parts], axis=0) / divisor
    bias = np.sum([np.where(p.present, p.bias, 0.0) for p in parts], axis=0) / divisor
    bias = np.where(seen > 0, bias, _ABSENT_SCORE).astype(np.float32)
    return SvmPart(weights=weights.astype(np.float32), bias=bias, present=seen > 0)


def combine(svm: SvmPart, features: sp.csr_matrix, y: np.ndarray, *, nb_alpha: float) -> Heads:
    """Adds a complement naive Bayes fitted on `features` to the SVM part (it is cheap to fit)."""
    n_classes = svm.bias.shape[0]
    present = np.unique(y)
    nb = ComplementNB(alpha=nb_alpha).fit(features, y)
    nb_weights = np.zeros((features.shape[1], n_classes), dtype=np.float32)
    nb_weights[:, present] = nb.feature_log_prob_.T
    nb_present = np.zeros(n_classes, dtype=bool)
    nb_present[present] = True
    return Heads(
        weights=np.hstack([svm.weights, nb_weights]),
        bias=np.concatenate([svm.bias, np.zeros(n_classes, dtype=np.float32)]),
        nb_present=nb_present,
    )


def fit_heads(
    features: sp.csr_matrix, y: np.ndarray, n_classes: int, *, svc_c: float, nb_alpha: float
) -> Heads:
    """Fits both scorers on `features` (y holds class indices 0..n_classes-1, maybe not all present)."""
    return combine(fit_svm(features, y, n_classes, c=svc_c), features, y, nb_alpha=nb_alpha)
