"""Paper 003's metrics (section 4.4) from confusion counts, for one model or many bootstrap resamples.

Per class: recall RE = TP / support, precision PR = TP / predicted (0 when the class is never
predicted), F1 = 2 PR RE / (PR + RE) (0 when both are 0). Overall: accuracy Acc, balanced accuracy
BAcc (mean RE), mean precision mPR and mean F1 mF1, means over the classes present in the cases
(as `skinkeras.evaluation.metrics.compute_metrics`). Everything comes from per-class counts
`W @ one_hot`, so a resample given as case counts W (B, n) costs one matrix product: the
case-weighted form `bootstrap_ci` takes (`case_weighted`).

Example:
    >>> import numpy as np
    >>> m = summary(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    >>> round(m["balanced_accuracy"], 3), round(m["mean_precision"], 3)
    (0.75, 0.833)
"""

from __future__ import annotations

import numpy as np

SUMMARY = ("accuracy", "balanced_accuracy", "mean_precision", "mean_f1")


def counts(y_true, y_pred, num_classes: int, weights=None):
    """(TP, support, predicted), each (B, C) (B = 1 without `weights`)."""
    eye = np.eye(num_classes)
    truth, guess = eye[np.asarray(y_true, np.int64)], eye[np.asarray(y_pred, np.int64)]
    weights = np.ones((1, truth.shape[0])) if weights is None else np.asarray(weights, np.float64)
    return weights @ (truth * guess), weights @ truth, weights @ guess


def per_class(tp, support, predicted) -> dict[str, np.ndarray]:
    """recall (NaN for an absent class), precision, f1, each (B, C)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"recall": recall, "precision": precision, "f1": np.where(support > 0, f1, np.nan)}


def summary_batched(tp, support, predicted) -> dict[str, np.ndarray]:
    """Acc, BAcc, mPR, mF1 per row (B,), means over the classes present in each row."""
    classes = per_class(tp, support, predicted)
    present = support > 0
    n_present = np.maximum(present.sum(axis=1), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = tp.sum(axis=1) / support.sum(axis=1)
    return {
        "accuracy": accuracy,
        "balanced_accuracy": np.where(present, classes["recall"], 0.0).sum(axis=1) / n_present,
        "mean_precision": np.where(present, classes["precision"], 0.0).sum(axis=1) / n_present,
        "mean_f1": np.where(present, classes["f1"], 0.0).sum(axis=1) / n_present,
    }


def summary(y_true, y_pred, num_classes: int) -> dict[str, float]:
    return {k: float(v[0]) for k, v in summary_batched(*counts(y_true, y_pred, num_classes)).items()}


def class_figures(y_true, y_pred, class_names) -> dict[str, dict]:
    """Per class: recall (None when absent), precision, f1 (None when absent), support."""
    tp, support, predicted = counts(y_true, y_pred, len(class_names))
    figures = per_class(tp, support, predicted)
    out = {}
    for c, name in enumerate(class_names):
        present = support[0, c] > 0
        out[name] = {"recall": float(figures["recall"][0, c]) if present else None,
                     "precision": float(figures["precision"][0, c]),
                     "f1": float(figures["f1"][0, c]) if present else None, "support": int(support[0, c])}
    return out


def case_weighted(metric: str, num_classes: int):
    """`statistic(y_true, y_pred, *, weights)` -> (B,) for `bootstrap_ci` (case-weighted)."""
    from skinkeras.evaluation.batched import takes_case_weights

    if metric not in SUMMARY:
        raise ValueError(f"metric must be one of {SUMMARY}. Received: metric={metric!r}")

    @takes_case_weights
    def statistic(y_true, y_pred, *, weights):
        return summary_batched(*counts(y_true, y_pred, num_classes, weights))[metric]

    return statistic
