"""BCa bootstrap against scipy.stats.bootstrap(method="BCa"); paired permutation test; bench."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import scipy.stats

from skinkeras.bench import stats as bench_stats
from skinkeras.evaluation import batched
from skinkeras.evaluation.bootstrap import bca_acceleration, bootstrap_ci, jackknife_values
from skinkeras.evaluation.permutation import paired_permutation_test

TOLERANCE = 0.005  # the acceptance bound on each interval end


def predictions(n, num_classes, seed, shift=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    logits = rng.normal(size=(n, num_classes))
    logits[np.arange(n), y] += shift
    prob = np.exp(logits)
    return y, prob / prob.sum(axis=1, keepdims=True)


def scipy_bca(statistic_on_last_axis, data, paired=True, seed=123, confidence=0.95):
    result = scipy.stats.bootstrap(
        data, statistic_on_last_axis, n_resamples=10_000, paired=paired, vectorized=True,
        method="BCa", confidence_level=confidence, rng=seed,
    )
    return result.confidence_interval


def assert_close(ours, reference, tolerance=TOLERANCE):
    assert abs(ours.low - reference.low) < tolerance, (ours, reference)
    assert abs(ours.high - reference.high) < tolerance, (ours, reference)


# With the same integer seed our resamples are the draws scipy 1.17 makes (rng.integers(0, n,
# (batch, n)) in order), so the intervals agree to rounding: an exact oracle for the bias
# correction, the jackknife acceleration and the percentile step. With different seeds they agree
# within Monte-Carlo noise, which is what the 0.005 acceptance bound is about.
EXACT = 1e-9


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(0).exponential(size=400),  # skewed: BCa differs from percentile
        np.random.default_rng(1).normal(0.3, 0.1, size=150),
        np.random.default_rng(2).lognormal(0, 0.5, size=60),
    ],
)
def test_mean_matches_scipy(data):
    reference = scipy_bca(lambda x, axis=-1: x.mean(axis=axis), (data,))
    ours = bootstrap_ci(lambda x: x.mean(axis=-1), data, seed=0)
    assert_close(ours, reference)
    assert_close(bootstrap_ci(lambda x: x.mean(axis=-1), data, seed=123), reference, EXACT)
    assert ours.estimate == pytest.approx(data.mean())
    # The case-weighted path draws the same resamples, so it gives the same interval.
    weighted = bootstrap_ci(batched.mean_weighted, data, seed=0)
    assert weighted.low == pytest.approx(ours.low) and weighted.high == pytest.approx(ours.high)


def _scipy_stat(metric):
    def statistic(labels, *scores, axis=-1):
        return metric(labels, np.stack(scores, axis=-1))

    return statistic


@pytest.mark.parametrize("n, num_classes, seed", [(300, 7, 0), (200, 3, 1)])
def test_balanced_accuracy_and_macro_auc_match_scipy(n, num_classes, seed):
    y, prob = predictions(n, num_classes, seed)
    data = (y, *prob.T)
    for weighted, gathered in (
        (batched.balanced_accuracy_weighted, batched.balanced_accuracy_batched),
        (batched.MacroAUCWeighted(), batched.macro_auc_batched),
    ):
        reference = scipy_bca(_scipy_stat(gathered), data)
        ours = bootstrap_ci(weighted, y, prob, seed=seed)
        assert_close(ours, reference)
        assert_close(bootstrap_ci(weighted, y, prob, seed=123), reference, EXACT)
        same = bootstrap_ci(gathered, y, prob, seed=seed)  # gathered path, same draws
        assert same.low == pytest.approx(ours.low) and same.high == pytest.approx(ours.high)


def test_binary_auc_matches_scipy():
    rng = np.random.default_rng(5)
    y = rng.random(250) < 0.2
    score = np.round(np.where(y, rng.normal(1, 1, 250), rng.normal(0, 1, 250)), 1)  # ties
    reference = scipy_bca(
        lambda labels, scores, axis=-1: batched.binary_auc_batched(labels.astype(bool), scores),
        (y, score),
    )
    ours = bootstrap_ci(batched.binary_auc_weighted, y, score, seed=3)
    assert_close(ours, reference)
    assert_close(bootstrap_ci(batched.binary_auc_weighted, y, score, seed=123), reference, EXACT)


def test_unpaired_difference_of_means_matches_scipy():
    rng = np.random.default_rng(7)
    a, b = rng.exponential(1.0, 120), rng.exponential(1.4, 90)
    reference = scipy_bca(
        lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), (a, b), paired=False
    )
    # The standard error here is 0.18, so other seeds differ by ~0.006 of pure Monte-Carlo noise;
    # same seed: the same draws, per-sample jackknife and acceleration sums as scipy.
    ours = bootstrap_ci(lambda x, y: x.mean(-1) - y.mean(-1), a, b, seed=123, paired=False)
    assert_close(ours, reference, EXACT)


def test_acceleration_is_the_jackknife_skewness_formula():
    x = np.random.default_rng(9).exponential(size=80)
    (values,) = jackknife_values(lambda a: a.mean(axis=-1), x)
    loops = np.array([np.delete(x, i).mean() for i in range(x.size)])
    np.testing.assert_allclose(values, loops)
    d = loops.mean() - loops
    assert bca_acceleration([values]) == pytest.approx((d**3).sum() / (6 * (d**2).sum() ** 1.5))
    # For the mean, a = skewness / (6 sqrt(n)) with the biased sample skewness.
    skew = scipy.stats.skew(x)
    assert bca_acceleration([values]) == pytest.approx(skew / (6 * np.sqrt(x.size)), rel=1e-9)


def test_percentile_method_matches_scipy_and_chunking_does_not_change_results():
    x = np.random.default_rng(11).normal(size=200)
    reference = scipy.stats.bootstrap(
        (x,), lambda a, axis=-1: a.std(axis=axis), n_resamples=10_000, method="percentile", rng=0
    ).confidence_interval
    ours = bootstrap_ci(lambda a: a.std(axis=-1), x, seed=1, method="percentile")
    assert_close(ours, reference)
    same_seed = bootstrap_ci(lambda a: a.std(axis=-1), x, seed=0, method="percentile")
    assert_close(same_seed, reference, EXACT)
    chunked = bootstrap_ci(lambda a: a.std(axis=-1), x, seed=1, method="percentile", batch_size=77)
    assert (chunked.low, chunked.high) == (ours.low, ours.high)


def test_degenerate_and_undefined_statistics():
    constant = bootstrap_ci(lambda a: a.mean(-1), np.full(30, 2.0), n_resamples=200, seed=0)
    assert (constant.low, constant.high) == (2.0, 2.0)
    # Tiny set with one positive: resamples without it have no AUC and are dropped, not NaN.
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0])
    score = np.linspace(0, 1, 8)[::-1]
    result = bootstrap_ci(batched.binary_auc_weighted, y, score, n_resamples=500, seed=0)
    assert result.n_dropped > 0
    assert result.estimate == 1.0
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(lambda a: a.mean(-1), np.arange(5.0), confidence=95)
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(lambda a, b: a.mean(-1), np.arange(5.0), np.arange(6.0))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        bootstrap_ci(lambda a: a, np.arange(5.0), n_resamples=10)


def test_permutation_test_finds_a_real_difference():
    y, good = predictions(300, 4, seed=0, shift=2.0)
    _, poor = predictions(300, 4, seed=1, shift=0.3)
    poor = poor[np.argsort(np.random.default_rng(0).permutation(300))]
    result = paired_permutation_test(batched.balanced_accuracy_batched, y, good, poor, seed=0)
    assert result.difference > 0.2
    assert result.p_value < 0.001
    assert result.p_value >= 1 / 10_001  # never 0


def test_permutation_test_identical_models_give_p_one():
    y, prob = predictions(200, 3, seed=2)
    result = paired_permutation_test(batched.macro_auc_batched, y, prob, prob, 2000, seed=0)
    assert result.difference == 0.0
    assert result.p_value == 1.0


def test_permutation_test_equal_quality_models_are_not_significant():
    y, a = predictions(400, 3, seed=3)
    # b: the same model with small noise, no systematic difference.
    b = a + np.random.default_rng(4).normal(0, 0.01, a.shape)
    result = paired_permutation_test(batched.balanced_accuracy_batched, y, a, b, 2000, seed=0)
    assert result.p_value > 0.05


def test_permutation_loop_path_matches_vectorised_and_binary_specificity():
    rng = np.random.default_rng(6)
    y = rng.random(150) < 0.3
    score_a = np.where(y, rng.normal(1.5, 1, 150), rng.normal(0, 1, 150))
    score_b = np.where(y, rng.normal(0.5, 1, 150), rng.normal(0, 1, 150))

    def spec(labels, scores):
        return batched.specificity_at_sensitivity_batched(labels, scores, 0.9)

    vectorised = paired_permutation_test(spec, y, score_a, score_b, 300, seed=1)
    looped = paired_permutation_test(
        lambda labels, s: float(spec(labels, s[None])[0]), y, score_a, score_b, 300, seed=1,
        vectorized=False,
    )
    assert vectorised.difference == pytest.approx(looped.difference)
    assert vectorised.p_value == pytest.approx(looped.p_value)


def test_bench_stats_runs_and_agrees_with_scipy(capsys):
    parser = argparse.ArgumentParser()
    bench_stats.add_arguments(parser)
    args = parser.parse_args(["--n", "200", "--resamples", "2000", "--json"])
    assert bench_stats.run(args) == 0
    results = json.loads(capsys.readouterr().out)
    for row in results["metrics"].values():
        assert row["ours_ci"][0] < row["estimate"] < row["ours_ci"][1]
        assert row["max_abs_ci_difference"] < 1e-9  # same seed as scipy: the same resamples
