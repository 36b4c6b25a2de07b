"""Metrics against sklearn on fixed predictions; operating points; batched metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from skinkeras.evaluation import batched
from skinkeras.evaluation.metrics import (
    METRICS_KEYS,
    average_precision,
    compute_metrics,
    roc_auc,
)
from skinkeras.evaluation.operating_point import (
    metrics_at_threshold,
    operating_point,
    threshold_for_sensitivity,
)

NAMES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def predictions(n=400, num_classes=7, seed=0, shift=1.2, decimals=None, absent=()):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    for c in absent:
        y[y == c] = (c + 1) % num_classes
    logits = rng.normal(size=(n, num_classes))
    logits[np.arange(n), y] += shift
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    if decimals is not None:  # ties in the scores
        prob = np.round(prob, decimals)
    return y, prob


@pytest.mark.parametrize("decimals", [None, 1])
def test_metrics_match_sklearn(decimals):
    y, prob = predictions(decimals=decimals)
    m = compute_metrics(y, prob, NAMES, n_resamples=0)
    pred = prob.argmax(axis=1)
    assert set(METRICS_KEYS) <= set(m)
    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    np.testing.assert_array_equal(m["confusion_matrix"], skm.confusion_matrix(y, pred))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred, zero_division=0)
    cm = skm.confusion_matrix(y, pred)
    aucs, aps = [], []
    for c, name in enumerate(NAMES):
        row = m["per_class"][name]
        assert row["precision"] == pytest.approx(precision[c])
        assert row["recall"] == pytest.approx(recall[c])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["support"] == support[c]
        tn = cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]
        assert row["specificity"] == pytest.approx(tn / (tn + cm[:, c].sum() - cm[c, c]))
        aucs.append(skm.roc_auc_score(y == c, prob[:, c]))
        aps.append(skm.average_precision_score(y == c, prob[:, c]))
        assert row["auc"] == pytest.approx(aucs[-1], abs=1e-12)
        assert row["ap"] == pytest.approx(aps[-1], abs=1e-12)
    assert m["macro_auc"] == pytest.approx(np.mean(aucs))
    assert m["map"] == pytest.approx(np.mean(aps))
    if decimals is None:  # sklearn's multiclass AUC needs rows summing to 1
        assert m["macro_auc"] == pytest.approx(
            skm.roc_auc_score(y, prob, multi_class="ovr", average="macro")
        )


def test_absent_class_is_null_and_skipped_by_macro_means():
    y, prob = predictions(absent=(3,))
    assert not np.any(y == 3)
    m = compute_metrics(y, prob, NAMES, n_resamples=200, seed=1)
    df = m["per_class"]["df"]
    assert df["support"] == 0
    assert df["auc"] is None and df["ap"] is None and df["recall"] is None and df["f1"] is None
    assert m["absent_classes"] == ["df"]
    present = [c for c in range(7) if c != 3]
    pred = prob.argmax(axis=1)
    assert m["macro_auc"] == pytest.approx(
        np.mean([skm.roc_auc_score(y == c, prob[:, c]) for c in present])
    )
    assert m["map"] == pytest.approx(
        np.mean([skm.average_precision_score(y == c, prob[:, c]) for c in present])
    )
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(y, pred, labels=present, average="macro", zero_division=0)
    )
    with pytest.warns(UserWarning):  # sklearn warns that df is predicted but absent
        expected = skm.balanced_accuracy_score(y, pred)
    assert m["balanced_accuracy"] == pytest.approx(expected)
    low, high = m["macro_auc_ci"]
    assert low < m["macro_auc"] < high


def test_intervals_bracket_the_estimates():
    y, prob = predictions(n=300)
    m = compute_metrics(y, prob, NAMES, n_resamples=2000, seed=0)
    for key in ("balanced_accuracy", "macro_auc"):
        low, high = m[f"{key}_ci"]
        assert low < m[key] < high
        assert high - low < 0.2


def test_operating_point_threshold_rule():
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.3
    score = np.where(y, rng.normal(1.0, 1.0, 500), rng.normal(0.0, 1.0, 500))
    for target in (0.5, 0.9, 0.98, 1.0):
        t = threshold_for_sensitivity(y, score, target)
        sens = np.mean(score[y] >= t)
        assert sens >= target
        # Largest such threshold: any larger positive score loses the target.
        larger = np.sort(score[y][score[y] > t])
        if larger.size:
            assert np.mean(score[y] >= larger[0]) < target
        # sklearn's ROC points with tpr >= target: the best specificity among them is ours.
        fpr, tpr, _ = skm.roc_curve(y, score, drop_intermediate=False)
        best = np.max(1 - fpr[tpr >= target - 1e-12])
        assert operating_point(y, score, target)["specificity"] == pytest.approx(best)


def test_operating_point_exact_sensitivity_and_ties():
    # 50 positives: 0.98 * 50 = 49 positives must be >= threshold (no rounding up to 50).
    y = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    score = np.r_[np.arange(50) / 10 + 1.0, np.arange(50) / 100]
    point = operating_point(y, score, 0.98)
    assert point["threshold"] == pytest.approx(1.1)
    assert point["sensitivity"] == pytest.approx(0.98)
    assert point["specificity"] == 1.0
    tied = metrics_at_threshold([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.1], 0.5)
    assert (tied["tp"], tied["fp"], tied["tn"], tied["fn"]) == (1, 1, 1, 1)


def test_two_class_task_has_operating_points_matching_sklearn():
    y, prob = predictions(n=300, num_classes=2, seed=4, shift=1.0)
    m = compute_metrics(y, prob, ["benign", "melanoma"], n_resamples=500, seed=0,
                        target_sensitivity=0.95)
    task = m["operating_points"]["melanoma"]
    at_half = task["at_0.5"]
    called = prob[:, 1] >= 0.5
    assert at_half["sensitivity"] == pytest.approx(skm.recall_score(y, called))
    assert at_half["specificity"] == pytest.approx(skm.recall_score(y == 0, ~called))
    assert at_half["precision"] == pytest.approx(skm.precision_score(y, called))
    assert at_half["f1"] == pytest.approx(skm.f1_score(y, called))
    assert at_half["accuracy"] == pytest.approx(skm.accuracy_score(y, called))
    assert task["auc"] == pytest.approx(skm.roc_auc_score(y, prob[:, 1]))
    target = task["at_target_sensitivity"]
    assert target["sensitivity"] >= 0.95
    low, high = task["specificity_at_target_ci"]
    assert low <= target["specificity"] <= high


def test_one_vs_rest_task_for_a_named_class():
    y, prob = predictions(n=200)
    m = compute_metrics(y, prob, NAMES, n_resamples=0, one_vs_rest=["mel"])
    assert list(m["operating_points"]) == ["mel"]
    assert m["operating_points"]["mel"]["positives"] == int(np.sum(y == 4))
    with pytest.raises(ValueError, match="Unknown class 'xyz'"):
        compute_metrics(y, prob, NAMES, n_resamples=0, one_vs_rest=["xyz"])


def test_batched_metrics_match_row_by_row_and_sklearn():
    y, prob = predictions(n=120, decimals=1)
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(y), (6, len(y)))
    labels, scores = y[index], prob[index]
    ba = batched.balanced_accuracy_batched(labels, scores)
    auc = batched.macro_auc_batched(labels, scores)
    for b in range(index.shape[0]):
        present = np.unique(labels[b])
        assert ba[b] == pytest.approx(skm.balanced_accuracy_score(labels[b], scores[b].argmax(1)))
        assert auc[b] == pytest.approx(
            np.mean([skm.roc_auc_score(labels[b] == c, scores[b][:, c]) for c in present])
        )
    counts = np.stack([np.bincount(row, minlength=len(y)) for row in index]).astype(float)
    np.testing.assert_allclose(batched.balanced_accuracy_weighted(y, prob, weights=counts), ba)
    np.testing.assert_allclose(batched.MacroAUCWeighted()(y, prob, weights=counts), auc)
    np.testing.assert_allclose(batched.macro_auc_weighted(y, prob, weights=counts), auc)


def test_binary_helpers_and_undefined_cases():
    assert np.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))
    assert roc_auc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5]) == pytest.approx(
        skm.roc_auc_score([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5])
    )
    spec = batched.specificity_at_sensitivity_batched(
        np.array([1, 1, 0, 0]), np.array([[0.9, 0.8, 0.1, 0.85]]), 1.0
    )
    assert spec[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "y, prob, names, match",
    [
        ([0, 1], [0.2, 0.8], None, "shape"),
        ([0, 1, 2], [[0.5, 0.5], [0.5, 0.5]], None, "shape"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], None, r"indices in \[0, 2\)"),
        ([0, 1], [[0.5, 0.5], [0.5, 0.5]], ["a"], "must name the 2 columns"),
        ([0, 1], [[np.nan, 0.5], [0.5, 0.5]], None, "NaN"),
    ],
)
def test_bad_inputs_say_what_was_received(y, prob, names, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(y, prob, names, n_resamples=0)
