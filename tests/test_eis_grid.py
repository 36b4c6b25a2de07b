"""Paper 000's grid end to end on a tiny generated EIS set: folds, cells, out-of-fold predictions for
every lesion, max ensembles, the "paper" protocol's retraining, resume per cell, and the Table 1
evaluation. Tiny models (TinyCNN, 1 epoch, 3 folds): this tests the protocol, not accuracy."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from skinkeras.errors import SkinkerasError
from skinkeras.experiments import ExperimentConfig, apply_overrides

FOLDS = 3
ROWS = "svm,gru_max,dense,ens_dense_gru,dense_gru_ca"  # the FC-NN is tested in test_eis_models
TINY = ["task=eis", "data.dataset=eis", "data.use_metadata=false", "model.weights=", f"eis.folds={FOLDS}",
        "eis.eis_epochs=1", "eis.cnn_epochs=1", "eis.eis_learning_rate=1e-3", "eis.cnn_learning_rate=1e-3",
        "eis.eis_batch_size=16", "eis.cnn_batch_size=16", "eis.gru_units=8", "eis.hidden_units=8",
        "eis.fcnn_units=16,8", "eis.joint_fc_units=8", "eis.max_measurements=4", "eis.dense_backbone=TinyCNN",
        "eis.serx_backbone=TinyCNN", "eis.image_height=48", "eis.image_width=64", "eis.crop_size=32",
        "eis.eval_crops=4", "eis.eval_permutations=2", "eis.n_permutations=200", "train.adam_epsilon=1e-7"]


def tiny_config(root, *extra):
    return apply_overrides(ExperimentConfig(name="tiny_eis"), TINY + [f"data.root={root}", *extra])


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from skinkeras.data.synth import synthesize
    from skinkeras.runs import train_experiment

    root = tmp_path_factory.mktemp("eis_data")
    synthesize("eis", root, n=36, seed=3, image_size=(64, 48))
    run = tmp_path_factory.mktemp("eis") / "run"
    summary = train_experiment(tiny_config(root, f"eis.rows={ROWS}", "eis.protocol=paper", "eis.joint_init=members"),
                               run, verbose=0)
    return root, run, summary


def _folds(run):
    return pd.read_csv(run / "lesion_folds.csv", dtype={"lesion_id": str}, keep_default_na=False)


def test_folds_are_stratified_by_label(grid):
    _, run, _ = grid
    folds = _folds(run)
    counts = folds.groupby(["label", "fold"]).size().unstack(fill_value=0)
    assert set(folds["fold"]) == set(range(FOLDS))
    assert (counts.max(axis=1) - counts.min(axis=1)).max() <= 1


def test_every_lesion_is_predicted_once_by_the_fold_that_left_it_out(grid):
    from skinkeras.evaluation.predictions import Predictions

    root, run, summary = grid
    folds = _folds(run).set_index("lesion_id")
    predictions = Predictions.read(run / "predictions.csv")
    metadata = pd.read_csv(root / "eis_metadata.csv", keep_default_na=False)
    with_image = set(metadata.loc[metadata["image"] != "", "lesion_id"])
    assert set(predictions.models) == set(summary["rows"]) == set(ROWS.split(","))
    for row, part in predictions.split_by_model().items():
        frame = part.frame
        assert frame["id"].is_unique
        expected = with_image if row in ("dense", "ens_dense_gru", "dense_gru_ca") else set(folds.index)
        assert set(frame["id"]) == expected, row
        assert (frame["fold"].astype(int).to_numpy() == folds.loc[frame["id"], "fold"].to_numpy()).all()
        probabilities = part.probabilities()
        assert np.allclose(probabilities.sum(axis=1), 1.0) and np.isfinite(probabilities).all()


def test_max_ensemble_is_the_max_of_its_members(grid):
    from skinkeras.evaluation.predictions import Predictions

    _, run, _ = grid
    by_row = Predictions.read(run / "predictions.csv").split_by_model()
    ensemble = by_row["ens_dense_gru"]
    ids = ensemble.ids
    members = [by_row[m].aligned_to(ids).probabilities()[:, 1] for m in ("dense", "gru_max")]
    assert np.allclose(ensemble.probabilities()[:, 1], np.maximum(*members))


def test_paper_protocol_retrains_for_the_epochs_chosen_on_validation(grid):
    _, run, _ = grid
    for k in range(FOLDS):
        selection = json.loads((run / "cells" / "gru_max" / f"fold_{k}" / "selection.json").read_text())
        assert selection["protocol"] == "paper"
        assert 1 <= selection["chosen_epochs"] <= selection["epochs_trained_for_selection"]
        assert len(selection["history"]) == selection["epochs_trained_for_selection"]
        assert (run / "cells" / "gru_max" / f"fold_{k}" / "infer.keras").is_file()
    assert (run / "cells" / "svm" / "fold_0" / "svm.joblib").is_file()


def test_joint_model_starts_from_its_members(grid):
    _, run, _ = grid
    selection = json.loads((run / "cells" / "dense_gru_ca" / "fold_0" / "selection.json").read_text())
    assert selection["started_from"][0].endswith("gru_max/fold_0/infer.keras")
    assert selection["started_from"][1].endswith("dense/fold_0/infer.keras")
    assert {"eis_gru", "eis_hidden_dense", "tiny_cnn"} <= set(selection["layers_started_from_members"])
    assert "eis_normalization" not in selection["layers_started_from_members"]


def test_resume_retrains_only_unfinished_cells(grid, tmp_path):
    import shutil

    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.runs import train_experiment

    _, run, _ = grid
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "cells" / "gru_max" / "fold_1" / "predictions.csv").unlink()
    (copy / "predictions.csv").unlink()
    kept = copy / "cells" / "dense" / "fold_0" / "predictions.csv"
    before = kept.stat().st_mtime_ns
    train_experiment(None, copy, resume=True, verbose=0)
    assert kept.stat().st_mtime_ns == before
    assert (copy / "cells" / "gru_max" / "fold_1" / "predictions.csv").is_file()
    old = Predictions.read(run / "predictions.csv").select("dense").frame
    new = Predictions.read(copy / "predictions.csv").select("dense").frame
    pd.testing.assert_frame_equal(old.reset_index(drop=True), new.reset_index(drop=True))


def test_evaluate_writes_table1_with_every_trained_row(grid):
    from skinkeras.runs import evaluate_run

    _, run, _ = grid
    metrics, files = evaluate_run(run, n_resamples=100)
    assert {"table1_md", "table1_html", "metrics", "pvalues", "roc"} <= set(files) or all(
        os.path.exists(p) for p in files.values())
    text = (run / "evaluation_test" / "table1.md").read_text()
    for label in ("SVM", "GRU state-max-pool", "Dense", "Dense & GRU", "Dense-GRU CA"):
        assert label in text
    assert set(metrics["rows"]) == set(ROWS.split(","))
    assert "lesions" in metrics["summary"]


@pytest.mark.slow
def test_select_protocol_predicts_with_the_selected_model(tmp_path, grid):
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.runs import train_experiment

    root, _, _ = grid
    run = tmp_path / "select"
    train_experiment(tiny_config(root, "eis.rows=gru_mean", "eis.protocol=select", "eis.eis_epochs=2"), run, verbose=0)
    selection = json.loads((run / "cells" / "gru_mean" / "fold_0" / "selection.json").read_text())
    assert selection["protocol"] == "select" and len(selection["history"]) == 2
    assert len(Predictions.read(run / "predictions.csv")) == len(_folds(run))


@pytest.mark.parametrize("override, message", [
    ("eis.rows=svm,gru_maxx", "unknown rows"),
    ("eis.protocol=fast", "eis.protocol"),
    ("eis.folds=2", "eis.folds"),
    ("eis.evaluate_on=melanoma", "eis.evaluate_on"),
    ("eis.joint_init=pretrained", "eis.joint_init"),
])
def test_bad_settings_fail_before_training(tmp_path, override, message):
    from skinkeras.runs import train_experiment

    with pytest.raises(SkinkerasError, match=message):
        train_experiment(tiny_config(tmp_path / "nothing", override), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "config.json").exists()
