"""The decision rule for balanced accuracy (issue 19): the prior adjustment p / pi^tau, its fit on
validation predictions, and its use by evaluate, the run's predictor, the SavedModel (in the
graph), the TFLite predictor (on the host) and the model card."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinkeras.evaluation.decision_rule import (
    DecisionRule,
    adjust,
    balanced_accuracy,
    class_prior,
    fit_tau,
)


def calibrated_scores(prior, n=4000, seed=0, separation=1.2):
    """Labels drawn from `prior` and the exact posteriors of 1-D Gaussian classes (calibrated)."""
    rng = np.random.default_rng(seed)
    prior = np.asarray(prior, np.float64)
    y = rng.choice(len(prior), size=n, p=prior)
    means = separation * np.arange(len(prior))
    x = rng.normal(means[y], 1.0)
    joint = prior * np.exp(-0.5 * (x[:, None] - means) ** 2)
    return y, joint / joint.sum(axis=1, keepdims=True)


def test_adjust_renormalises_and_works_on_stacked_models():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    prior = np.array([0.6, 0.3, 0.1])
    out = adjust(p, prior, 1.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    expected = p / prior
    np.testing.assert_allclose(out, expected / expected.sum(axis=1, keepdims=True))
    stacked = adjust(np.stack([p, p[::-1]]), prior, 0.5)
    np.testing.assert_allclose(stacked[1], adjust(p[::-1], prior, 0.5))
    np.testing.assert_allclose(adjust(p, prior, 0.0), p)
    np.testing.assert_allclose(adjust(adjust(p, prior, 0.4), prior, -0.4), p)  # the inverse evaluate uses
    with pytest.raises(ValueError, match="classes"):
        adjust(p, prior[:2], 1.0)


def test_prior_adjustment_raises_balanced_accuracy_of_calibrated_imbalanced_scores():
    prior = [0.8, 0.15, 0.05]
    y_val, p_val = calibrated_scores(prior, seed=0)
    y_test, p_test = calibrated_scores(prior, seed=1)
    tau, before, after = fit_tau(y_val, p_val, class_prior(y_val, 3))
    # Calibrated posteriors: the balanced-accuracy optimum is the likelihood, p / pi (tau near 1).
    assert 0.6 <= tau <= 1.4
    assert after > before + 0.1
    assert balanced_accuracy(y_test, adjust(p_test, prior, tau)) > balanced_accuracy(y_test, p_test) + 0.1


def test_balanced_classes_keep_the_plain_softmax():
    y_val, p_val = calibrated_scores([1 / 3] * 3, seed=2)
    tau, before, after = fit_tau(y_val, p_val, [1 / 3] * 3)
    assert tau == 0.0  # every tau scores alike: the smallest wins
    assert before == after


def test_rule_never_lowers_the_validation_score_and_round_trips_as_json(tmp_path):
    y_val, p_val = calibrated_scores([0.5, 0.3, 0.2], n=300, seed=3)
    rule = DecisionRule.fit(y_val, p_val, [0.5, 0.3, 0.2])
    assert rule.bacc_after >= rule.bacc_before
    again = DecisionRule.from_json(rule.write(tmp_path / "decision_rule.json").read_text())
    assert again == rule
    np.testing.assert_allclose(again.apply(p_val), adjust(p_val, rule.prior, rule.tau))
    assert "tau" in rule.describe() and json.loads(rule.to_json())["kind"] == "prior"


# The rule in a run: evaluate, predictor, exports, model card.

RULE = DecisionRule(prior=(0.05, 0.1, 0.5, 0.05, 0.15, 0.1, 0.05), tau=0.8, bacc_before=0.4, bacc_after=0.5)


@pytest.fixture(scope="module")
def rule_run(tmp_path_factory):
    from tests.test_export import make_fake_run

    base = tmp_path_factory.mktemp("rule")
    run = make_fake_run(base / "run", metadata=None, head="gap")
    RULE.write(run / "decision_rule.json")
    return run


def _images(run, n=4):
    from skinkeras.export.predictor import read_image
    from skinkeras.engine.run_directory import RunDirectory

    root = RunDirectory(run).read_config().data.root
    return [read_image(p) for p in sorted(__import__("pathlib").Path(root).rglob("*.jpg"))[:n]]


def test_run_predictor_applies_the_rule(rule_run):
    from skinkeras.export.predictor import RunPredictor

    predictor = RunPredictor(rule_run)
    images = _images(rule_run)
    adjusted = predictor.predict_many(images)
    raw = np.asarray(predictor.keras_model.predict_on_batch({"image": np.stack([predictor.prepare(i) for i in images])}))
    np.testing.assert_allclose(adjusted, RULE.apply(raw), atol=1e-6)
    np.testing.assert_allclose(predictor.predict(images[0]), adjusted[0], atol=1e-5)


def test_saved_model_and_tflite_return_the_adjusted_probabilities(rule_run, tmp_path):
    from skinkeras.export.predictor import RunPredictor, load_export_predictor
    from skinkeras.export.run_export import export_run

    images = _images(rule_run)
    expected = RunPredictor(rule_run).predict_many(images)
    for fmt in ("saved_model", "tflite"):
        result = export_run(rule_run, fmt, out_dir=tmp_path / fmt)
        assert result["verification"]["passed"], result["verification"]
        encoding = json.loads((tmp_path / fmt / "metadata_encoding.json").read_text())
        assert encoding["decision_rule"]["tau"] == RULE.tau
        assert encoding["decision_rule"]["applied_in_model"] is (fmt == "saved_model")
        np.testing.assert_allclose(load_export_predictor(tmp_path / fmt).predict_many(images), expected, atol=1e-4)
        card = (tmp_path / fmt / "MODEL_CARD.md").read_text()
        assert "## Decision rule" in card and "tau = 0.80" in card


def test_evaluate_writes_adjusted_predictions_and_both_scores(rule_run, tmp_path):
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.runs import evaluate_run

    metrics, files = evaluate_run(rule_run, out_dir=tmp_path / "eval", n_resamples=0)
    assert metrics["decision_rule"]["tau"] == RULE.tau
    predictions = Predictions.read(files["predictions"])
    plain = adjust(predictions.probabilities(), RULE.prior, -RULE.tau)
    assert metrics["balanced_accuracy_without_decision_rule"] == pytest.approx(
        balanced_accuracy(predictions.labels(), plain))
    labels = predictions.labels()
    recall = metrics["recall_without_decision_rule"]
    assert np.mean(list(recall.values())) == pytest.approx(metrics["balanced_accuracy_without_decision_rule"])
    for k, value in recall.items():
        assert value == pytest.approx((plain.argmax(axis=1)[labels == k] == k).mean())
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["decision_rule"]["prior"] == list(RULE.prior)


def test_a_run_without_the_file_keeps_the_plain_softmax(tmp_path_factory):
    from skinkeras.export.serving import load_run_spec
    from tests.test_export import fake_run

    spec = load_run_spec(fake_run(tmp_path_factory))
    assert spec.decision_rule is None and "decision_rule" not in spec.encoding_description()


def test_training_fits_the_rule_on_val_with_the_train_prior(tmp_path):
    from skinkeras.data.synth import synthesize
    from skinkeras.engine.run_directory import RunDirectory
    from skinkeras.errors import SkinkerasError
    from skinkeras.evaluation.decision_rule import read_rule
    from skinkeras.systems.classification.train import train
    from tests.test_training import tiny_config

    root = tmp_path / "data"
    synthesize("ham10000", root, n=60, seed=3, image_size=(48, 36), force=True)
    run = RunDirectory(tmp_path / "run")
    summary = train(tiny_config(root, "train.epochs=1"), run, verbose=0)
    rule = read_rule(run)
    split = __import__("pandas").read_csv(run.split)
    names = run.read_preprocessing()["class_names"]
    train_labels = split[split["split"] == "train"]["label"].map(names.index)
    np.testing.assert_allclose(rule.prior, class_prior(train_labels, len(names)))
    assert summary["decision_rule_tau"] == rule.tau and rule.bacc_after >= rule.bacc_before
    assert rule.fitted_on == "val"

    none = RunDirectory(tmp_path / "none")
    train(tiny_config(root, "train.epochs=1", "train.decision_rule=none"), none, verbose=0)
    assert not none.decision_rule.exists() and read_rule(none) is None
    with pytest.raises(SkinkerasError, match="train.decision_rule must be one of"):
        train(tiny_config(root, "train.decision_rule=thresholds"), tmp_path / "bad", verbose=0)
