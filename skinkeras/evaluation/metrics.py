"""Classification metrics and the `metrics.json` structure written by `skinkeras evaluate`.

Everything is computed from `y_true` (class indices, shape (n,)), `y_prob` (scores, shape (n, C))
and the class names; predictions are the arg-max. Balanced accuracy (mean recall) and macro AUC
are the headline figures because the classes are imbalanced (HAM10000 is 67 % nevi); both get BCa
bootstrap intervals (paper 000: 10,000 resamples; `skinkeras.evaluation.bootstrap`).

Classes absent from `y_true` (common on small external test sets): their recall, F1, AUC and
average precision are null in `per_class` (a ROC curve needs positives), and every macro mean
(balanced accuracy, macro F1, macro AUC, mAP, macro precision/recall/specificity) is taken over
the classes PRESENT in `y_true` only, as sklearn's `balanced_accuracy_score` does. Their
precision stays defined (0 when the model predicts them: every such prediction is wrong).
A class never predicted has precision 0 (sklearn's `zero_division=0`).

For a two-class task, and for any class named in `one_vs_rest`, `operating_points[name]` holds the
threshold reaching the target sensitivity (0.98 by default, paper 000), the specificity there with
a BCa interval, and sensitivity / specificity / precision / F1 / accuracy at threshold 0.5.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from skinkeras.evaluation import batched
from skinkeras.evaluation.bootstrap import bootstrap_ci
from skinkeras.evaluation.operating_point import metrics_at_threshold, operating_point

METRICS_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "balanced_accuracy_ci",
    "macro_auc",
    "macro_auc_ci",
    "macro_f1",
    "map",
    "per_class",
    "confusion_matrix",
    "n",
    "class_names",
)


def check_predictions(y_true, y_prob, class_names: Sequence[str] | None = None):
    """Validated (y_true int64 (n,), y_prob float64 (n, C), class names)."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    y_true = np.asarray(y_true)
    if y_prob.ndim != 2:
        raise ValueError(f"y_prob must have shape (n, num_classes). Received shape {y_prob.shape}.")
    if y_true.shape != (y_prob.shape[0],):
        raise ValueError(
            f"y_true must have shape ({y_prob.shape[0]},) to match y_prob. "
            f"Received shape {y_true.shape}."
        )
    if y_true.size and not np.issubdtype(y_true.dtype, np.integer):
        if not np.all(np.mod(y_true, 1) == 0):
            raise ValueError("y_true must hold class indices. Received non-integer values.")
    y_true = y_true.astype(np.int64)
    num_classes = y_prob.shape[1]
    if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
        raise ValueError(
            f"y_true must hold indices in [0, {num_classes}). "
            f"Received values from {y_true.min()} to {y_true.max()}."
        )
    if class_names is None:
        class_names = [str(c) for c in range(num_classes)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names must name the {num_classes} columns of y_prob. "
            f"Received {len(class_names)} names: {class_names}."
        )
    if not np.all(np.isfinite(y_prob)):
        raise ValueError("y_prob holds NaN or infinite scores.")
    return y_true, y_prob, class_names


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts (C, C): rows are the true class, columns the predicted one."""
    flat = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def roc_auc(y_true, score) -> float:
    """ROC AUC (Mann-Whitney, ties one half); NaN without positives or negatives."""
    return float(batched.binary_auc_batched(np.asarray(y_true, bool)[None], np.asarray(score)[None])[0])


def average_precision(y_true, score) -> float:
    """Area under the precision-recall steps, sum_k (R_k - R_{k-1}) P_k over distinct thresholds.

    Same definition as sklearn's `average_precision_score` (no interpolation). NaN without positives.
    """
    positive = np.asarray(y_true, bool)
    score = np.asarray(score, np.float64)
    n_pos = positive.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    sorted_scores = score[order]
    tp = np.cumsum(positive[order])
    fp = np.cumsum(~positive[order])
    # Only the last position of each run of tied scores is a threshold.
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_curve(y_true, score):
    """(false positive rate, true positive rate, thresholds), one point per distinct score."""
    positive = np.asarray(y_true, bool)
    score = np.asarray(score, np.float64)
    order = np.argsort(-score, kind="stable")
    sorted_scores = score[order]
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    tp = np.cumsum(positive[order])[last]
    fp = np.cumsum(~positive[order])[last]
    n_pos, n_neg = max(positive.sum(), 1), max((~positive).sum(), 1)
    return (
        np.r_[0.0, fp / n_neg],
        np.r_[0.0, tp / n_pos],
        np.r_[np.inf, sorted_scores[last]],
    )


def _none_if_nan(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _mean_present(values: Sequence) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def compute_metrics(
    y_true,
    y_prob,
    class_names: Sequence[str] | None = None,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed=0,
    target_sensitivity: float = 0.98,
    one_vs_rest: Sequence[str] = (),
) -> dict:
    """All metrics as the `metrics.json` structure (plain Python types, None for undefined).

    Args:
        y_true: class indices, shape (n,).
        y_prob: class scores (softmax outputs), shape (n, C).
        class_names: C names, in column order.
        n_resamples: bootstrap resamples for the BCa intervals; 0 skips them (intervals None).
        confidence: confidence level of the intervals.
        seed: bootstrap seed, so a report can be reproduced.
        target_sensitivity: operating point for two-class and one-vs-rest tasks.
        one_vs_rest: class names that also get a binary operating point (e.g. ["mel"]).

    Example:
        >>> m = compute_metrics([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ["ben", "mal"],
        ...                     n_resamples=0)
        >>> m["accuracy"], m["balanced_accuracy"]
        (0.6666666666666666, 0.75)
    """
    y_true, y_prob, class_names = check_predictions(y_true, y_prob, class_names)
    n, num_classes = y_prob.shape
    if n == 0:
        raise ValueError("compute_metrics needs at least one prediction. Received n=0.")
    y_pred = y_prob.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    true_positive = np.diag(matrix)

    per_class = {}
    for c, name in enumerate(class_names):
        tp = int(true_positive[c])
        fp = int(predicted[c] - tp)
        fn = int(support[c] - tp)
        tn = int(n - tp - fp - fn)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if support[c] else None
        if recall is None:
            f1 = None
        else:
            f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        positive = y_true == c
        per_class[name] = {
            "precision": float(precision),
            "recall": recall,
            "specificity": tn / (tn + fp) if tn + fp else None,
            "f1": f1,
            "auc": _none_if_nan(roc_auc(positive, y_prob[:, c])),
            "ap": _none_if_nan(average_precision(positive, y_prob[:, c])),
            "support": int(support[c]),
        }
    present = [name for c, name in enumerate(class_names) if support[c] > 0]

    def macro(key):
        return _mean_present([per_class[name][key] for name in present])

    metrics = {
        "n": int(n),
        "class_names": list(class_names),
        "accuracy": float(true_positive.sum() / n),
        "balanced_accuracy": macro("recall"),
        "balanced_accuracy_ci": [None, None],
        "macro_auc": macro("auc"),
        "macro_auc_ci": [None, None],
        "macro_f1": macro("f1"),
        "macro_precision": macro("precision"),
        "macro_recall": macro("recall"),
        "macro_specificity": macro("specificity"),
        "map": macro("ap"),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "absent_classes": [name for name in class_names if name not in present],
        "confidence": confidence,
        "n_resamples": int(n_resamples),
        "bootstrap_seed": seed if seed is None or isinstance(seed, int) else str(seed),
    }
    if n_resamples and n >= 2:
        ba = bootstrap_ci(batched.balanced_accuracy_weighted, y_true, y_prob,
                          n_resamples=n_resamples, confidence=confidence, seed=seed)
        metrics["balanced_accuracy_ci"] = ba.as_list()
        if metrics["macro_auc"] is not None:
            auc = bootstrap_ci(batched.MacroAUCWeighted(), y_true, y_prob,
                               n_resamples=n_resamples, confidence=confidence, seed=seed)
            metrics["macro_auc_ci"] = auc.as_list()

    tasks = list(one_vs_rest)
    if num_classes == 2 and class_names[1] not in tasks:
        tasks.insert(0, class_names[1])
    if tasks:
        metrics["operating_points"] = {
            name: binary_task_metrics(
                y_true == _class_index(class_names, name),
                y_prob[:, _class_index(class_names, name)],
                target_sensitivity=target_sensitivity, n_resamples=n_resamples,
                confidence=confidence, seed=seed,
            )
            for name in tasks
        }
    return metrics


def _class_index(class_names: Sequence[str], name: str) -> int:
    try:
        return list(class_names).index(name)
    except ValueError:
        raise ValueError(f"Unknown class {name!r}; the classes are {list(class_names)}.") from None


def binary_task_metrics(
    y_true,
    score,
    *,
    target_sensitivity: float = 0.98,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed=0,
) -> dict:
    """One positive class against the rest: AUC, AP, the target-sensitivity point, metrics at 0.5."""
    positive = np.asarray(y_true).astype(bool)
    score = np.asarray(score, np.float64)
    result = {
        "positives": int(positive.sum()),
        "negatives": int((~positive).sum()),
        "auc": _none_if_nan(roc_auc(positive, score)),
        "ap": _none_if_nan(average_precision(positive, score)),
        "at_target_sensitivity": operating_point(positive, score, target_sensitivity),
        "at_0.5": metrics_at_threshold(positive, score, 0.5),
        "specificity_at_target_ci": [None, None],
        "auc_ci": [None, None],
    }
    if n_resamples and result["auc"] is not None:
        result["specificity_at_target_ci"] = bootstrap_ci(
            lambda labels, scores: batched.specificity_at_sensitivity_batched(
                labels, scores, target_sensitivity
            ),
            positive, score, n_resamples=n_resamples, confidence=confidence, seed=seed,
        ).as_list()
        result["auc_ci"] = bootstrap_ci(
            batched.binary_auc_weighted, positive, score,
            n_resamples=n_resamples, confidence=confidence, seed=seed,
        ).as_list()
    return result
