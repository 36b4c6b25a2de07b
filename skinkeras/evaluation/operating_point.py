"""Binary operating points: a threshold chosen for a target sensitivity, and metrics at a threshold.

Paper 000 (EIS + dermoscopy) compares every model at 98 % sensitivity, the clinical operating point
of a melanoma rule-out test. A case is called positive when its score is >= the threshold. Of all
thresholds whose sensitivity is >= the target we take the LARGEST one (the k-th largest positive
score, k = ceil(target * positives)): it keeps the target sensitivity with the most specificity.
Scores tied with the threshold are called positive, so the sensitivity reached can exceed the target.
"""

from __future__ import annotations

import math

import numpy as np


def _binary_inputs(y_true, score):
    positive = np.asarray(y_true).astype(bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if positive.shape != score.shape:
        raise ValueError(
            f"y_true and score must have the same length. Received {positive.size} and {score.size}."
        )
    return positive, score


def threshold_for_sensitivity(y_true, score, target_sensitivity: float = 0.98) -> float:
    """Largest threshold t with sensitivity(score >= t) >= target; NaN without positives."""
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(
            f"target_sensitivity must be in (0, 1]. Received: target_sensitivity={target_sensitivity}"
        )
    positive, score = _binary_inputs(y_true, score)
    positive_scores = np.sort(score[positive])[::-1]
    if positive_scores.size == 0:
        return float("nan")
    # The slack keeps e.g. 0.98 * 50 = 49.00000000000001 from demanding 50 positives.
    k = max(1, math.ceil(target_sensitivity * positive_scores.size - 1e-9))
    return float(positive_scores[k - 1])


def metrics_at_threshold(y_true, score, threshold: float) -> dict:
    """Sensitivity, specificity, precision, F1 and accuracy when score >= threshold is positive."""
    positive, score = _binary_inputs(y_true, score)
    called = score >= threshold
    tp = int((called & positive).sum())
    fp = int((called & ~positive).sum())
    tn = int((~called & ~positive).sum())
    fn = int((~called & positive).sum())

    def ratio(a, b):
        return None if b == 0 else a / b

    sensitivity = ratio(tp, tp + fn)
    precision = ratio(tp, tp + fp)
    if sensitivity is None or precision is None:
        f1 = None if sensitivity is None else 0.0
    else:
        f1 = 0.0 if precision + sensitivity == 0 else 2 * precision * sensitivity / (precision + sensitivity)
    return {
        "threshold": float(threshold),
        "sensitivity": sensitivity,
        "specificity": ratio(tn, tn + fp),
        "precision": precision if precision is not None else 0.0,
        "f1": f1,
        "accuracy": ratio(tp + tn, positive.size),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def operating_point(y_true, score, target_sensitivity: float = 0.98) -> dict:
    """The threshold for the target sensitivity and the metrics there."""
    threshold = threshold_for_sensitivity(y_true, score, target_sensitivity)
    if not np.isfinite(threshold):
        return {"target_sensitivity": target_sensitivity, "threshold": None}
    result = metrics_at_threshold(y_true, score, threshold)
    result["target_sensitivity"] = target_sensitivity
    return result
