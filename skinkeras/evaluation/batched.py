"""Metrics evaluated on many resamples or permutations at once, in NumPy.

The bootstrap (`skinkeras.evaluation.bootstrap`) and the permutation test
(`skinkeras.evaluation.permutation`) need one metric value per resample; looping over 10,000
resamples in Python is what makes naive implementations slow. Two forms are offered here:

* **batched** functions take arrays with a leading batch axis, e.g. `y_true (B, n)` (or `(n,)`,
  broadcast) and `y_prob (B, n, C)`, and return `(B,)`. ROC AUC is computed per row from mid-ranks
  (Mann-Whitney U), so ties and the duplicated cases of a bootstrap resample count one half.
* **case-weighted** functions take the original arrays plus `weights (B, n)`: how many times each
  case appears in each resample. Every metric here is symmetric in the cases, so a resample is
  fully described by those counts; the original scores are sorted once, which makes AUC O(B n)
  instead of O(B n log n). They carry the attribute `takes_case_weights = True`, which
  `bootstrap_ci` looks for.

A class absent from a resample is skipped by the macro means of that resample (as sklearn's
`balanced_accuracy_score` does for a class absent from `y_true`); a binary AUC with no positives or
no negatives is NaN.
"""

from __future__ import annotations

import numpy as np


def takes_case_weights(function):
    """Marks `function(*arrays, weights=W)` as a case-weighted statistic for `bootstrap_ci`."""
    function.takes_case_weights = True
    return function


# --------------------------------------------------------------------------- batched (gathered)


def _as_batched(y_true, y_prob):
    """(n,) or (B, n) labels with (n, C) or (B, n, C) scores -> (B, n), (B, n, C), was_single."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    single = y_prob.ndim == 2
    if single:
        y_prob = y_prob[None]
    y_true = np.broadcast_to(np.asarray(y_true), y_prob.shape[:2])
    return y_true, y_prob, single


def midranks(scores: np.ndarray) -> np.ndarray:
    """Ranks (1-based) along the last axis, ties sharing the mean of their positions."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    m = scores.shape[-1]
    positions = np.broadcast_to(np.arange(m), scores.shape)
    new_group = np.ones(scores.shape, dtype=bool)
    new_group[..., 1:] = sorted_scores[..., 1:] != sorted_scores[..., :-1]
    group_start = np.maximum.accumulate(np.where(new_group, positions, 0), axis=-1)
    ends_group = np.ones(scores.shape, dtype=bool)
    ends_group[..., :-1] = new_group[..., 1:]
    # Last position of each group, propagated backwards with a reversed running minimum.
    group_end = np.flip(
        np.minimum.accumulate(np.flip(np.where(ends_group, positions, m - 1), -1), axis=-1), -1
    )
    sorted_ranks = (group_start + group_end) / 2.0 + 1.0
    ranks = np.empty_like(sorted_ranks)
    np.put_along_axis(ranks, order, sorted_ranks, axis=-1)
    return ranks


def binary_auc_batched(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC per row from mid-ranks. `positive` bool (B, m) or (m,), `scores` (B, m) -> (B,)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.broadcast_to(np.asarray(positive, dtype=bool), scores.shape)
    ranks = midranks(scores)
    n_pos = positive.sum(axis=-1).astype(np.float64)
    n_neg = positive.shape[-1] - n_pos
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def balanced_accuracy_batched(y_true, y_prob) -> np.ndarray:
    """Mean recall over the classes present in each row. y_prob (B, n, C) -> (B,)."""
    y_true, y_prob, single = _as_batched(y_true, y_prob)
    num_classes = y_prob.shape[-1]
    predicted = y_prob.argmax(axis=-1)
    correct = predicted == y_true
    recalls = np.empty(y_true.shape[:1] + (num_classes,))
    for c in range(num_classes):
        in_class = y_true == c
        support = in_class.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            recalls[:, c] = np.where(support > 0, (in_class & correct).sum(axis=-1) / support, np.nan)
    result = _nanmean_rows(recalls)
    return result[0] if single else result


def macro_auc_batched(y_true, y_prob) -> np.ndarray:
    """Mean one-vs-rest ROC AUC over the classes with both positives and negatives in each row."""
    y_true, y_prob, single = _as_batched(y_true, y_prob)
    aucs = np.stack(
        [binary_auc_batched(y_true == c, y_prob[..., c]) for c in range(y_prob.shape[-1])], axis=-1
    )
    result = _nanmean_rows(aucs)
    return result[0] if single else result


def accuracy_batched(y_true, y_prob) -> np.ndarray:
    y_true, y_prob, single = _as_batched(y_true, y_prob)
    result = (y_prob.argmax(axis=-1) == y_true).mean(axis=-1)
    return result[0] if single else result


def specificity_at_sensitivity_batched(y_true, score, target_sensitivity: float = 0.98):
    """Specificity at the largest threshold whose sensitivity is >= the target, per row.

    `y_true` bool/0-1 (B, n) or (n,), `score` (B, n) of the positive class -> (B,).
    Positive means score >= threshold (see `operating_point.threshold_for_sensitivity`).
    """
    score = np.asarray(score, dtype=np.float64)
    positive = np.broadcast_to(np.asarray(y_true).astype(bool), score.shape)
    n_pos = positive.sum(axis=-1)
    n_neg = positive.shape[-1] - n_pos
    # k = number of positives that must score >= threshold; the threshold is the k-th largest
    # positive score. The tiny slack keeps 0.98 * 50 == 49 from becoming 50 by rounding.
    k = np.ceil(target_sensitivity * n_pos - 1e-9).astype(np.int64)
    k = np.clip(k, 1, None)
    positive_scores = np.where(positive, score, -np.inf)
    descending = -np.sort(-positive_scores, axis=-1)
    threshold = np.take_along_axis(descending, (k - 1)[..., None], axis=-1)[..., 0]
    true_negative = (~positive & (score < threshold[..., None])).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        specificity = true_negative / n_neg
    return np.where((n_pos > 0) & (n_neg > 0), specificity, np.nan)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    count = finite.sum(axis=-1)
    total = np.where(finite, values, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / count, np.nan)


# --------------------------------------------------------------------------- case-weighted


@takes_case_weights
def mean_weighted(values, *, weights):
    """Mean of `values (n,)` under case counts `weights (B, n)`."""
    values = np.asarray(values, dtype=np.float64)
    return weights @ values / weights.sum(axis=-1)


@takes_case_weights
def balanced_accuracy_weighted(y_true, y_prob, *, weights):
    """Balanced accuracy of each resample described by case counts `weights (B, n)`."""
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob)
    num_classes = y_prob.shape[-1]
    one_hot = (y_true[:, None] == np.arange(num_classes)[None, :]).astype(np.float64)
    correct = (y_prob.argmax(axis=-1) == y_true).astype(np.float64)
    support = weights @ one_hot
    hits = weights @ (one_hot * correct[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        recalls = np.where(support > 0, hits / support, np.nan)
    return _nanmean_rows(recalls)


class _SortedScores:
    """One class's scores sorted once, grouped by tie, for weighted AUCs."""

    def __init__(self, positive: np.ndarray, scores: np.ndarray):
        order = np.argsort(scores, kind="stable")
        sorted_scores = scores[order]
        starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        self.order = order
        self.group_starts = starts
        self.positive = positive[order].astype(np.float64)

    def auc(self, weights: np.ndarray) -> np.ndarray:
        w = weights[:, self.order]
        w_pos = w * self.positive
        if self.group_starts.size < self.order.size:  # ties in the original scores
            w_pos = np.add.reduceat(w_pos, self.group_starts, axis=-1)
            w = np.add.reduceat(w, self.group_starts, axis=-1)
        w_neg = w - w_pos
        negatives_below = np.cumsum(w_neg, axis=-1) - w_neg
        # Each (positive, negative) pair counts 1 when the positive scores higher, 1/2 on a tie.
        pairs = (w_pos * (negatives_below + 0.5 * w_neg)).sum(axis=-1)
        total_pos = w_pos.sum(axis=-1)
        total_neg = w_neg.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = pairs / (total_pos * total_neg)
        return np.where((total_pos > 0) & (total_neg > 0), auc, np.nan)


@takes_case_weights
def binary_auc_weighted(positive, scores, *, weights):
    """ROC AUC of `scores` for the boolean `positive` under case counts `weights (B, n)`."""
    return _SortedScores(np.asarray(positive, bool), np.asarray(scores, np.float64)).auc(weights)


class MacroAUCWeighted:
    """Case-weighted macro one-vs-rest AUC with the per-class sorting cached between chunks."""

    takes_case_weights = True

    def __init__(self):
        self._key = None
        self._sorted: list[_SortedScores] = []

    def __call__(self, y_true, y_prob, *, weights):
        # Holding the arrays themselves keeps their ids from being reused by other arrays.
        if self._key is None or self._key[0] is not y_true or self._key[1] is not y_prob:
            labels = np.asarray(y_true)
            scores = np.asarray(y_prob, dtype=np.float64)
            self._sorted = [
                _SortedScores(labels == c, scores[:, c]) for c in range(scores.shape[-1])
            ]
            self._key = (y_true, y_prob)
        aucs = np.stack([s.auc(weights) for s in self._sorted], axis=-1)
        return _nanmean_rows(aucs)


def macro_auc_weighted(y_true, y_prob, *, weights):
    """Case-weighted macro one-vs-rest AUC (sorts the scores on every call; see MacroAUCWeighted)."""
    return MacroAUCWeighted()(y_true, y_prob, weights=weights)


macro_auc_weighted.takes_case_weights = True
