"""Paper 004's four metrics, plain and vectorised over resamples (for BCa intervals and permutation
tests): mAP (mean over classes of the average precision of p(class) one-vs-rest), top-1 accuracy,
AUC melanoma vs rest (p(melanoma)), AUC cancer vs benign (the summed probability of the cancer classes).

The batched forms take labels `(n,)` or `(B, n)` and probabilities `(B, n, C)` and return `(B,)`.
Average precision follows `skinkeras.evaluation.metrics.average_precision` (scikit-learn's
definition: no interpolation, tied scores one threshold); a class absent from a resample is left out
of the mean.
"""

from __future__ import annotations

import numpy as np

from skinkeras.evaluation.batched import _as_batched, binary_auc_batched


def average_precision_batched(positive, scores) -> np.ndarray:
    """(B, n) bool, (B, n) float -> (B,) average precision; NaN where a row has no positive."""
    positive = np.asarray(positive, bool)
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, axis=-1, kind="stable")
    hits = np.take_along_axis(positive, order, axis=-1)
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    tp = np.cumsum(hits, axis=-1)
    seen = np.arange(1, scores.shape[-1] + 1)
    last = np.ones(scores.shape, bool)  # the last position of each run of tied scores is a threshold
    last[..., :-1] = sorted_scores[..., 1:] != sorted_scores[..., :-1]
    tp_at = np.where(last, tp, 0)
    previous = np.maximum.accumulate(tp_at, axis=-1)  # tp is non-decreasing: the latest threshold's
    previous = np.concatenate([np.zeros(previous.shape[:-1] + (1,)), previous[..., :-1]], axis=-1)
    gain = np.where(last, (tp - previous) * tp / seen, 0.0).sum(axis=-1)
    n_positive = positive.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_positive > 0, gain / np.maximum(n_positive, 1), np.nan)


def map_batched(y_true, y_prob) -> np.ndarray:
    y_true, y_prob, _ = _as_batched(y_true, y_prob)
    per_class = np.stack([average_precision_batched(y_true == c, y_prob[..., c]) for c in range(y_prob.shape[-1])],
                         axis=-1)
    counts = np.isfinite(per_class).sum(axis=-1)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, np.nansum(per_class, axis=-1) / np.maximum(counts, 1), np.nan)


def accuracy_batched(y_true, y_prob) -> np.ndarray:
    y_true, y_prob, _ = _as_batched(y_true, y_prob)
    return (np.argmax(y_prob, axis=-1) == y_true).mean(axis=-1)


def auc_of_classes(classes):
    """A batched metric: AUC of (the true class is in `classes`) scored by the summed probability of
    `classes`; NaN when no class is given or a resample lacks positives or negatives."""
    classes = list(classes)

    def auc(y_true, y_prob):
        y_true, y_prob, _ = _as_batched(y_true, y_prob)
        if not classes:
            return np.full(y_prob.shape[0], np.nan)
        return binary_auc_batched(np.isin(y_true, classes), y_prob[..., classes].sum(axis=-1))

    return auc


def metric_functions(class_names, melanoma_class: str, cancer_classes) -> dict:
    """name -> batched metric for the report's four columns (paper 004's order)."""
    index = {name: k for k, name in enumerate(class_names)}
    melanoma = [index[melanoma_class]] if melanoma_class in index else []
    cancer = [index[c] for c in cancer_classes if c in index]
    return {"accuracy": accuracy_batched, "map": map_batched, "auc_melanoma": auc_of_classes(melanoma),
            "auc_cancer": auc_of_classes(cancer)}


def evaluate(functions: dict, y_true, y_prob) -> dict:
    """The metrics of one set of predictions as floats (None when undefined)."""
    out = {}
    for name, function in functions.items():
        value = float(function(np.asarray(y_true), np.asarray(y_prob, np.float64)[None])[0])
        out[name] = value if np.isfinite(value) else None
    return out
