"""Paper 000's statistics on Table 1's rows: the evaluated set, the 98 %-sensitivity operating point,
BCa intervals and the paired permutation matrix, all vectorised over resamples / permutations.

* Evaluated set (paper rule, "benign+melanoma"): every benign lesion plus the malignant lesions
  whose diagnosis is melanoma; "all" keeps everything.
* Operating point: the largest threshold whose sensitivity is >= the target
  (`skinkeras.evaluation.operating_point`); a score equal to the threshold is called malignant.
* Sensitivity and specificity at that FIXED threshold and the AUC get BCa intervals from
  `skinkeras.evaluation.bootstrap.bootstrap_ci` with case-weighted statistics (resample counts,
  no gathered copies); every statistic of every row uses the same seed, so the same resamples.
* Permutation tests (`skinkeras.evaluation.permutation`) compare the specificity at the target
  sensitivity of two rows, the threshold re-chosen inside each permutation (as
  `batched.specificity_at_sensitivity_batched`; here with a partial sort of the positives only,
  same values, tested).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from skinkeras.data.eis import EVALUATION_RULES, evaluated_mask
from skinkeras.errors import SkinkerasError
from skinkeras.evaluation import batched
from skinkeras.evaluation.bootstrap import bootstrap_ci
from skinkeras.evaluation.operating_point import metrics_at_threshold, threshold_for_sensitivity
from skinkeras.evaluation.permutation import paired_permutation_test

EVALUATE_ON = EVALUATION_RULES
POSITIVE = "malignant"
# Permutations per chunk: bounds memory to a few tens of MiB per pair (draws do not depend on it).
_PERMUTATION_BATCH = 2_500


def evaluated_ids(predictions, diagnosis=None, evaluate_on: str = "benign+melanoma") -> tuple[list, dict, list]:
    """(ids kept in first-seen order, counts, notes). `diagnosis`: id -> diagnosis (dict / Series);
    default: the predictions' own "diagnosis" column if they have one. The rule is the data layer's
    (`skinkeras.data.eis.evaluated_mask`); a lesion without a diagnosis counts as "unknown"."""
    import pandas as pd

    if evaluate_on not in EVALUATE_ON:
        raise SkinkerasError(f"evaluate_on must be one of {EVALUATE_ON}; got {evaluate_on!r}")
    frame = predictions.frame.drop_duplicates("id")
    if diagnosis is None and "diagnosis" in frame.columns:
        diagnosis = dict(zip(frame["id"], frame["diagnosis"]))
    diagnosis = {} if diagnosis is None else {str(k): str(v) for k, v in dict(diagnosis).items()}
    lesions = pd.DataFrame({"id": frame["id"].to_numpy(), "label": frame["y_true"].to_numpy()})
    lesions["diagnosis"] = [diagnosis.get(i, "unknown") for i in lesions["id"]]
    notes = []
    if evaluate_on == "benign+melanoma" and not diagnosis:
        notes.append("no diagnoses were given: every malignant lesion is counted as a melanoma")
        keep = np.ones(len(lesions), dtype=bool)
    else:
        keep = evaluated_mask(lesions, evaluate_on)
    excluded = lesions.loc[~keep, "diagnosis"].value_counts().sort_index().to_dict()
    kept = lesions.loc[keep, "id"].tolist()
    positives = int((lesions.loc[keep, "label"] == POSITIVE).sum())
    counts = {"lesions": len(kept), "benign": len(kept) - positives,
              ("malignant" if evaluate_on == "all" else "melanoma"): positives,
              "excluded_malignant": {str(k): int(v) for k, v in excluded.items()}}
    if excluded:
        notes.append(f"{sum(excluded.values())} malignant non-melanoma lesions left out ("
                     + ", ".join(f"{k} {v}" for k, v in sorted(excluded.items())) + ")")
    return kept, counts, notes


def aligned_scores(predictions, ids) -> tuple[np.ndarray, dict, dict]:
    """(positive (n,) bool, row -> p(malignant) (n,) on the ids every row predicted, row -> number of
    `ids` it lacks). Rows missing lesions are compared on the lesions all rows have."""
    names = list(predictions.class_names)
    if POSITIVE not in names:
        raise SkinkerasError(f"the predictions need a {POSITIVE!r} class; classes: {names}")
    wanted = set(ids)
    per_row = {}
    for model, part in predictions.split_by_model().items():
        frame = part.frame[part.frame["id"].isin(wanted)].drop_duplicates("id")
        per_row[model] = frame.set_index("id")
    shared = [i for i in ids if all(i in f.index for f in per_row.values())]
    missing = {m: len(wanted) - len(f) for m, f in per_row.items() if len(f) < len(wanted)}
    positive = np.array([v == POSITIVE for v in next(iter(per_row.values())).loc[shared, "y_true"]])
    scores = {m: f.loc[shared, "prob_" + POSITIVE].to_numpy(np.float64) for m, f in per_row.items()}
    return positive, scores, missing


def fixed_threshold_statistics(positive, threshold: float):
    """Case-weighted sensitivity and specificity of `score >= threshold` (threshold held fixed)."""

    @batched.takes_case_weights
    def sensitivity(score, *, weights):
        hit = (positive & (score >= threshold)).astype(np.float64)
        return weights @ hit / (weights @ positive.astype(np.float64))

    @batched.takes_case_weights
    def specificity(score, *, weights):
        negative = ~positive
        hit = (negative & (score < threshold)).astype(np.float64)
        return weights @ hit / (weights @ negative.astype(np.float64))

    return sensitivity, specificity


def row_metrics(positive, score, *, target_sensitivity=0.98, n_resamples=10_000, seed=0,
                confidence=0.95) -> dict:
    """Operating point, sensitivity / specificity there and AUC, each with its BCa interval."""
    positive = np.asarray(positive, bool)
    threshold = threshold_for_sensitivity(positive, score, target_sensitivity)
    point = metrics_at_threshold(positive, score, threshold)
    result = {"threshold": threshold, **{k: point[k] for k in ("tp", "fp", "tn", "fn")}}
    sensitivity, specificity = fixed_threshold_statistics(positive, threshold)

    @batched.takes_case_weights
    def auc(values, *, weights):
        return batched.binary_auc_weighted(positive, values, weights=weights)

    for name, statistic in (("sensitivity", sensitivity), ("specificity", specificity), ("auc", auc)):
        ci = bootstrap_ci(statistic, score, n_resamples=n_resamples, seed=seed, confidence=confidence)
        result[name], result[name + "_ci"] = ci.estimate, ci.as_list()
        result[name + "_dropped_resamples"] = ci.n_dropped
    return result


def specificity_at_sensitivity(target_sensitivity: float = 0.98):
    """`metric(y_true (n,), score (P, n)) -> (P,)`: specificity at the largest threshold with
    sensitivity >= target, the threshold chosen per row; equal to
    `batched.specificity_at_sensitivity_batched` but sorting only the k-th positive (partition)."""

    def metric(y_true, score):
        positive = np.asarray(y_true).astype(bool)
        score = np.asarray(score, np.float64)
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_pos == 0 or n_neg == 0:
            return np.full(score.shape[:-1], np.nan)
        k = max(1, math.ceil(target_sensitivity * n_pos - 1e-9))
        if positive[:n_pos].all():  # positives first (as permutation_matrix orders them): views, no copies
            positives, negatives = score[..., :n_pos], score[..., n_pos:]
        else:
            positives, negatives = score[..., positive], score[..., ~positive]
        threshold = np.partition(positives, n_pos - k, axis=-1)[..., n_pos - k]
        return np.count_nonzero(negatives < threshold[..., None], axis=-1) / n_neg

    return metric


def permutation_matrix(positive, scores: dict, *, target_sensitivity=0.98, n_permutations=10_000,
                       seed=0, alpha=0.05) -> dict:
    """Paired permutation tests on specificity at the target sensitivity for every pair of rows.
    Returns {"rows", "matrix" (p-values, 1 on the diagonal), "pairs"}; every pair uses `seed`.
    The lesions are put in a fixed order first (positives, then negatives, each in the given
    order), which lets the metric slice instead of copy; the swap drawn for each position follows."""
    names = list(scores)
    order = np.argsort(~np.asarray(positive, bool), kind="stable")
    positive = np.asarray(positive, bool)[order]
    scores = {name: np.asarray(values, np.float64)[order] for name, values in scores.items()}
    metric = specificity_at_sensitivity(target_sensitivity)
    matrix = np.ones((len(names), len(names)))
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        test = paired_permutation_test(metric, positive, scores[a], scores[b], n_permutations, seed=seed,
                                       batch_size=_PERMUTATION_BATCH)
        matrix[i, j] = matrix[j, i] = test.p_value
        pairs.append({"a": a, "b": b, "difference": test.difference, "p_value": test.p_value,
                      "significant": bool(test.p_value < alpha)})
    return {"rows": names, "matrix": matrix.tolist(), "pairs": pairs}
