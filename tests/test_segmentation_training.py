"""Segmentation losses / metrics against hand-computed values, and a tiny end-to-end run:
train_segmentation -> run directory -> load_segmenter -> evaluate (predictions, scores) -> resume."""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from skinkeras.errors import SkinkerasError
from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, TrainConfig
from skinkeras.segmentation.losses import (
    DiceBCELoss,
    MeanDice,
    MeanJaccard,
    dice_per_image,
    jaccard_per_image,
    soft_dice,
    thresholded_jaccard,
)
from skinkeras.systems.segmentation.config import SegmentationConfig


def _masks():
    """Two 4x4 images: (truth, prediction) with known overlaps."""
    truth = np.zeros((4, 4, 4, 1), np.float32)
    pred = np.zeros((4, 4, 4, 1), np.float32)
    truth[0, :2, :2] = 1  # 4 pixels
    pred[0, :2, :3] = 1  # 6 pixels, 4 shared: IoU 4/6, Dice 8/10
    truth[1, 0, :] = 1  # 4 pixels; empty prediction: IoU 0, Dice 0
    # image 2: both empty -> 1, 1
    pred[3, 3, 3] = 1  # empty truth, 1 predicted pixel: 0, 0
    return truth, pred


def test_numpy_scores_hand_computed():
    truth, pred = _masks()
    np.testing.assert_allclose(jaccard_per_image(truth, pred), [4 / 6, 0, 1, 0])
    np.testing.assert_allclose(dice_per_image(truth, pred), [0.8, 0, 1, 0])
    np.testing.assert_allclose(thresholded_jaccard([0.64, 0.65, 0.9, 1.0]), [0, 0.65, 0.9, 1.0])
    assert jaccard_per_image(np.zeros((3, 3)), np.zeros((3, 3)))[0] == 1.0
    with pytest.raises(ValueError, match="shapes"):
        jaccard_per_image(np.zeros((3, 3)), np.zeros((3, 4)))


def test_keras_metrics_match_numpy_and_average_per_image():
    truth, pred = _masks()
    probabilities = np.where(pred > 0, 0.8, 0.3).astype(np.float32)  # threshold 0.5 gives `pred`
    jaccard = MeanJaccard()
    jaccard.update_state(truth[:2], probabilities[:2])
    jaccard.update_state(truth[2:], probabilities[2:])
    np.testing.assert_allclose(float(jaccard.result()), np.mean([4 / 6, 0, 1, 0]), rtol=1e-6)
    cut = MeanJaccard(cut=0.65)
    cut.update_state(truth, probabilities)
    np.testing.assert_allclose(float(cut.result()), np.mean([4 / 6, 0, 1, 0]), rtol=1e-6)  # 0.667 >= 0.65
    cut = MeanJaccard(cut=0.7)
    cut.update_state(truth, probabilities)
    np.testing.assert_allclose(float(cut.result()), 0.25, rtol=1e-6)
    dice = MeanDice()
    dice.update_state(truth, probabilities)
    np.testing.assert_allclose(float(dice.result()), np.mean([0.8, 0, 1, 0]), rtol=1e-6)
    restored = MeanJaccard.from_config(cut.get_config())
    assert restored.cut == 0.7 and restored.threshold == 0.5


def test_soft_dice_and_loss_hand_computed():
    truth = np.zeros((1, 2, 2, 1), np.float32)
    truth[0, 0, 0] = 1
    pred = np.full((1, 2, 2, 1), 0.5, np.float32)
    # (2 * 0.5 + 1) / (1 + 2 + 1) = 0.5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soft_dice(truth, pred)), [0.5], rtol=1e-6)
    bce = -np.log(0.5)
    np.testing.assert_allclose(float(DiceBCELoss()(truth, pred)), 0.5 + bce, rtol=1e-5)
    np.testing.assert_allclose(float(DiceBCELoss(dice_weight=2.0, bce_weight=0.0)(truth, pred)), 1.0, rtol=1e-5)
    # Empty truth, (almost) empty prediction: soft Dice ~1 thanks to the smoothing term.
    assert float(DiceBCELoss(bce_weight=0.0)(np.zeros_like(truth), np.zeros_like(pred))) < 1e-6
    config = DiceBCELoss(dice_weight=0.3, bce_weight=0.7).get_config()
    assert DiceBCELoss.from_config(config).bce_weight == 0.7
    with pytest.raises(ValueError, match="dice_weight"):
        DiceBCELoss(dice_weight=0.0, bce_weight=0.0)


@pytest.fixture(scope="module")
def synthetic_ham(tmp_path_factory):
    from skinkeras.data.synth import synthesize

    root = tmp_path_factory.mktemp("ham")
    synthesize("ham10000", root, n=40, seed=0, image_size=(40, 30))
    return root


def _config(root, epochs=2):
    return ExperimentConfig(
        name="tiny_unet",
        task="segmentation",
        data=DataConfig(dataset="ham10000", root=str(root), image_size=32, batch_size=8, use_metadata=False),
        task_config=SegmentationConfig(base_filters=4),
        train=TrainConfig(epochs=epochs, learning_rate=1e-3, adam_epsilon=1e-7, precision="float32",
                          early_stopping_patience=0),
    )


@pytest.fixture(scope="module")
def trained_run(synthetic_ham, tmp_path_factory):
    from skinkeras.systems.segmentation.train import train_segmentation

    run = tmp_path_factory.mktemp("seg") / "run"
    summary = train_segmentation(_config(synthetic_ham, epochs=1), run, verbose=0)
    return run, summary


def test_train_writes_the_run_directory(trained_run, synthetic_ham):
    from skinkeras.systems.segmentation.model import load_segmenter
    from skinkeras.systems.segmentation.train import train_segmentation

    run, summary = trained_run
    for name in ("config.json", "split.csv", "preprocessing.json", "best.keras", "history.csv", "run.json",
                 "checkpoints/last.keras", "checkpoints/state.json"):
        assert (run / name).exists(), name
    assert summary["epochs_done"] == 1 and summary["images_without_mask"] == 0
    assert summary["best_val_jaccard"] is not None
    split = pd.read_csv(run / "split.csv", dtype=str)
    assert split.groupby("lesion_id")["split"].nunique().max() == 1  # no lesion crosses splits
    assert sum(summary["split_sizes"].values()) == len(split) == 40
    preprocessing = json.loads((run / "preprocessing.json").read_text())
    assert preprocessing["task"] == "segmentation" and preprocessing["image_size"] == 32
    model, size = load_segmenter(run)
    assert size == 32 and model.output.shape[-1] == 1
    with pytest.raises(SkinkerasError, match="--resume"):
        train_segmentation(_config(synthetic_ham, epochs=1), run, verbose=0)


def test_evaluate(trained_run, synthetic_ham, tmp_path):
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.runs import evaluate_run

    run, _ = trained_run
    split = pd.read_csv(run / "split.csv", dtype=str)
    metrics, files = evaluate_run(run, synthetic_ham, n_resamples=200, out_dir=tmp_path / "ev")
    # The predictions file is the contract: per-image scores, from which the means are computed.
    predictions = Predictions.read(files["predictions"])
    assert set(predictions.score_names) >= {"jaccard", "dice", "thresholded_jaccard"}
    assert metrics["dice"]["mean"] == pytest.approx(predictions.scores("dice").mean())
    per_image = pd.read_csv(files["per_image"])
    test_ids = set(split.loc[split["split"] == "test", "image_id"])
    assert set(per_image["image_id"]) == test_ids
    assert metrics["images"] == len(test_ids)
    assert metrics["jaccard"]["mean"] == pytest.approx(per_image["jaccard"].mean())
    low, high = metrics["jaccard"]["ci95"]
    assert low is None or low <= metrics["jaccard"]["mean"] <= high
    assert (per_image["thresholded_jaccard"] <= per_image["jaccard"]).all()
    assert "mean Jaccard" in metrics["summary"]
    for name in ("metrics", "report", "contours"):
        assert Path(files[name]).stat().st_size > 0


@pytest.mark.slow
def test_resume_continues_the_run(synthetic_ham, tmp_path):
    from skinkeras.systems.segmentation.train import train_segmentation

    run = tmp_path / "run"
    train_segmentation(_config(synthetic_ham, epochs=1), run, verbose=0)
    # The stored config decides on resume: raise its planned epochs first.
    stored = json.loads((run / "config.json").read_text())
    stored["train"]["epochs"] = 2
    (run / "config.json").write_text(json.dumps(stored))
    summary = train_segmentation(_config(synthetic_ham), run, resume=True, verbose=0)
    assert summary["epochs_done"] == 2
    assert len(pd.read_csv(run / "history.csv")) == 2


def test_errors(synthetic_ham, tmp_path):
    from skinkeras.systems.segmentation.model import load_segmenter
    from skinkeras.systems.segmentation.train import train_segmentation

    with pytest.raises(SkinkerasError, match="resume"):
        train_segmentation(_config(synthetic_ham), tmp_path / "none", resume=True)
    config = _config(synthetic_ham)
    config.segmentation.architecture = "segformer"
    with pytest.raises(SkinkerasError, match="segformer"):
        train_segmentation(config, tmp_path / "bad")
    with pytest.raises(SkinkerasError, match="segmentation run"):
        load_segmenter(tmp_path)


def test_real_ham10000_masks_resize_with_their_images(ham10000_root):
    """The shared HAM10000 copy (200 x 150 images and masks): image and mask come out at the
    model size, the mask binary and covering about as much as the original."""
    from skinkeras.data.pipeline import make_segmentation_dataset
    from skinkeras.data.registry import load_dataset
    from skinkeras.segmentation.crop import read_mask

    table = load_dataset("ham10000", ham10000_root)
    table = table.subset(table.samples.index[:8])
    batch = next(iter(make_segmentation_dataset(table, image_size=96, batch_size=8, training=False)))
    assert tuple(batch["image"].shape) == (8, 96, 96, 3) and tuple(batch["mask"].shape) == (8, 96, 96, 1)
    masks = batch["mask"].numpy()
    assert set(np.unique(masks)) <= {0.0, 1.0}
    original = np.array([read_mask(p).mean() for p in table.samples["mask_path"]])
    np.testing.assert_allclose(masks.mean(axis=(1, 2, 3)), original, atol=0.02)
