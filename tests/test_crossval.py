"""k-fold cross-validation for any task (`split.folds=K`): lesion-grouped folds, one run per fold
with the nested validation fold, out-of-fold predictions for every image, the merged evaluation,
and resume per fold. A tiny classifier on generated data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from skinkeras.experiments import ExperimentConfig, apply_overrides

FOLDS = 3
TINY = ["data.dataset=ham10000", "data.image_size=32", "data.batch_size=8", "data.use_metadata=false",
        "model.backbone=TinyCNN", "model.head=gap", "model.metadata_branch=none", "train.epochs=1",
        "train.early_stopping_patience=0", f"split.folds={FOLDS}"]


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    from skinkeras.data.synth import synthesize
    from skinkeras.runs import train_experiment

    root = tmp_path_factory.mktemp("cv_data")
    synthesize("ham10000", root, n=45, seed=4, image_size=(32, 24))
    run = tmp_path_factory.mktemp("cv") / "run"
    config = apply_overrides(ExperimentConfig(name="tiny_cv"), TINY + [f"data.root={root}"])
    summary = train_experiment(config, run, verbose=0)
    return root, run, summary


def test_every_fold_is_a_run_and_every_image_is_predicted_once(cv_run):
    from skinkeras.evaluation.predictions import Predictions

    root, run, summary = cv_run
    folds = pd.read_csv(run / "folds.csv", dtype=str)
    assert summary["folds"] == FOLDS and summary["images"] == len(folds)
    assert folds.groupby("lesion_id")["fold"].nunique().max() == 1  # a lesion stays in one fold
    for k in range(FOLDS):
        fold = run / f"fold_{k}"
        assert (fold / "best.keras").exists() and (fold / "run.json").exists()
        split = pd.read_csv(fold / "split.csv", dtype=str).merge(folds[["image_id", "fold"]], on="image_id")
        # Paper 000's nesting: test = fold k, val = fold k + 1, train = the other K - 2.
        assert set(split.loc[split["split"] == "test", "fold"]) == {str(k)}
        assert set(split.loc[split["split"] == "val", "fold"]) == {str((k + 1) % FOLDS)}
        assert str(k) not in set(split.loc[split["split"] == "train", "fold"])
        assert json.loads((fold / "config.json").read_text())["split"]["folds"] == 0
    merged = Predictions.read(run / "evaluation_test" / "predictions.csv")
    assert sorted(merged.ids) == sorted(folds["image_id"])  # every image once
    fold_of = dict(zip(folds["image_id"], folds["fold"].astype(int)))
    assert all(fold_of[i] == f for i, f in zip(merged.ids, merged.frame["fold"]))


def test_the_merged_evaluation_scores_every_image(cv_run):
    from skinkeras.runs import evaluate_run

    root, run, summary = cv_run
    metrics, files = evaluate_run(run, root, n_resamples=100)
    assert metrics["n"] == summary["images"] == 45
    assert metrics["cross_validation"]["folds"] == FOLDS
    assert metrics["balanced_accuracy_ci"][0] is not None
    assert Path(files["report"]).exists() and "3-fold cross-validation" in Path(files["report"]).read_text()
    with pytest.raises(Exception, match="out-of-fold"):
        evaluate_run(run, root, split="all")


def test_resume_skips_finished_folds_and_finishes_an_interrupted_one(cv_run):
    from skinkeras.runs import train_experiment

    root, run, _ = cv_run
    stamps = {k: os.stat(run / f"fold_{k}" / "best.keras").st_mtime_ns for k in range(FOLDS)}
    # Fold 1 as if killed after its last epoch's checkpoint, before it wrote run.json.
    (run / "fold_1" / "run.json").unlink()
    (run / "fold_1" / "evaluation_test" / "predictions.csv").unlink()
    summary = train_experiment(None, run, resume=True, verbose=0)
    assert (run / "fold_1" / "run.json").exists() and summary["out_of_fold_predictions"] == 45
    assert {k: os.stat(run / f"fold_{k}" / "best.keras").st_mtime_ns for k in range(FOLDS)} == stamps
    with pytest.raises(Exception, match="already holds a run"):
        train_experiment(apply_overrides(ExperimentConfig(), TINY + [f"data.root={root}"]), run, verbose=0)
