"""Ensembles over several models' probabilities (skinkeras.evaluation.ensembles)."""

from __future__ import annotations

import numpy as np
import pytest

from skinkeras.errors import SkinkerasError
from skinkeras.evaluation.ensembles import ENSEMBLES, STACKERS, make_ensemble


def _one_right_four_noise(n: int, seed: int, noisy: int = 4):
    """Model 0 puts 0.6 on the true class; the `noisy` others are confident random noise, so the
    average follows the noise and only a learned weighting finds model 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    right = np.full((n, 3), 0.2)
    right[np.arange(n), y] = 0.6
    noise = [rng.dirichlet([0.1, 0.1, 0.1], size=n) for _ in range(noisy)]
    return [right, *noise], y


def test_average_and_max_by_hand():
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    b = np.array([[0.3, 0.6, 0.1], [0.2, 0.5, 0.3]])
    y = np.array([0, 2])
    average = make_ensemble("average").fit([a, b], y).predict_proba([a, b])
    np.testing.assert_allclose(average, [[0.5, 0.4, 0.1], [0.15, 0.3, 0.55]])
    top = make_ensemble("max").fit([a, b], y).predict_proba([a, b])
    # per-class max (0.7, 0.6, 0.1) and (0.2, 0.5, 0.8), each renormalised to sum 1
    np.testing.assert_allclose(top, [[0.7 / 1.4, 0.6 / 1.4, 0.1 / 1.4], [0.2 / 1.5, 0.5 / 1.5, 0.8 / 1.5]])


def test_lc_head_has_423_parameters_and_learns_which_model_is_right():
    val_probs, y_val = _one_right_four_noise(300, seed=1)
    test_probs, y_test = _one_right_four_noise(300, seed=2)
    lc = make_ensemble("lc_head", seed=0, lc_epochs=300, lc_learning_rate=0.05).fit(val_probs, y_val)
    assert lc.model.count_params() == 423
    lc_accuracy = (lc.predict_proba(test_probs).argmax(1) == y_test).mean()
    average_accuracy = (make_ensemble("average").fit(val_probs, y_val).predict_proba(test_probs).argmax(1)
                        == y_test).mean()
    assert average_accuracy < 0.8  # the noise does mislead the average
    assert lc_accuracy > 0.95
    assert lc_accuracy > average_accuracy + 0.1


@pytest.mark.parametrize("name", STACKERS)
def test_stackers_output_valid_probabilities(name):
    # One noisy model only: kNN's distances drown in many noise dimensions with 120 samples.
    val_probs, y_val = _one_right_four_noise(120, seed=3, noisy=1)
    test_probs, y_test = _one_right_four_noise(60, seed=4, noisy=1)
    proba = make_ensemble(name, seed=0).fit(val_probs, y_val).predict_proba(test_probs)
    assert proba.shape == (60, 3)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # Model 0's scores are in the features: every stacker beats chance by a wide margin.
    assert (proba.argmax(1) == y_test).mean() > 0.6


def test_stacker_fitted_without_a_class_gives_it_probability_zero():
    val_probs, y_val = _one_right_four_noise(90, seed=5)
    keep = y_val != 1
    proba = make_ensemble("random_forest").fit([p[keep] for p in val_probs], y_val[keep]).predict_proba(val_probs)
    assert proba.shape == (90, 3)
    assert np.all(proba[:, 1] == 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_ensembles_check_their_inputs():
    a = np.full((4, 3), 1 / 3)
    with pytest.raises(SkinkerasError, match="unknown ensemble 'median'"):
        make_ensemble("median")
    with pytest.raises(RuntimeError, match="fit"):
        make_ensemble("average").predict_proba([a])
    with pytest.raises(ValueError, match="one shape"):
        make_ensemble("average").fit([a, a[:3]], [0, 1, 2, 0])
    fitted = make_ensemble("max").fit([a, a], [0, 1, 2, 0])
    with pytest.raises(ValueError, match="fitted on 2 models"):
        fitted.predict_proba([a])
    assert set(ENSEMBLES) == {"average", "max", "lc_head", *STACKERS}
