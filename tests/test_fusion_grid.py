"""Paper 004's grid end to end on a tiny generated derm7pt set: the official split, cells, fallback
predictions for cases without a clinical image, the random forest, resume per cell, the Table 1
report, `predict --clinical` and the SavedModel export. Tiny models (TinyCNN at 32 px, 2 epochs):
this tests the protocol and the contracts, not accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from skinkeras.errors import SkinkerasError
from skinkeras.experiments import ExperimentConfig, apply_overrides

ROWS = "dsc_macro_meta_emb,macro_noemb,meta_rf"
TINY = ["task=fusion", "data.dataset=derm7pt", "model.weights=", "fusion.backbone=TinyCNN", "fusion.image_size=32",
        "fusion.epochs=2", "fusion.batch_size=16", "fusion.learning_rate=1e-3", "fusion.embedding_units=8,8",
        "fusion.protocol=official", "fusion.forest_trees=10", "fusion.forest_depths=0,3", "fusion.forest_min_leaf=1",
        "fusion.forest_folds=2", "fusion.n_permutations=200", "train.adam_epsilon=1e-7"]


def tiny_config(root, *extra):
    return apply_overrides(ExperimentConfig(name="tiny_fusion"), TINY + [f"data.root={root}", *extra])


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from skinkeras.data.synth.derm7pt import synthesize_derm7pt
    from skinkeras.runs import train_experiment

    root = tmp_path_factory.mktemp("derm7pt")
    synthesize_derm7pt(root, n=60, seed=2, image_size=(64, 48), force=True, missing_clinical=0.15)
    run = tmp_path_factory.mktemp("fusion") / "run"
    summary = train_experiment(tiny_config(root, f"fusion.rows={ROWS}"), run, verbose=0)
    return root, run, summary


def _paired_case(root):
    """(dermoscopic, clinical) image paths of the first case that has both."""
    meta = pd.read_csv(root / "meta" / "meta.csv", dtype=str, keep_default_na=False)
    case = meta[meta["clinic"] != ""].iloc[0]
    return root / "images" / case["derm"], root / "images" / case["clinic"]


def _predictions(run, row):
    from skinkeras.evaluation.predictions import Predictions

    return Predictions.read(run / "cells" / row / "predictions.csv").frame


def test_fallback_rows_are_trained_and_predict_cases_without_a_clinical_image(grid):
    root, run, summary = grid
    assert summary["rows"] == ["dsc_meta_emb", "macro_noemb", "meta_rf", "dsc_macro_meta_emb"]
    split = pd.read_csv(run / "split.csv", dtype=str, keep_default_na=False).set_index("image_id")["split"]
    meta = pd.read_csv(root / "meta" / "meta.csv", dtype=str, keep_default_na=False)
    no_clinical = set(meta.loc[meta["clinic"] == "", "case_num"])
    test = set(split[split == "test"].index)
    assert no_clinical & test, "the fixture should hold test cases without a clinical image"
    fused = _predictions(run, "dsc_macro_meta_emb").set_index("id")
    assert set(fused.index) == test  # every test case, one way or the other
    by = fused["predicted_by"]
    assert set(by[by == "dsc_meta_emb"].index) == no_clinical & test
    fallback = _predictions(run, "dsc_meta_emb").set_index("id")
    for case in no_clinical & test:  # the fallback row's own probabilities, unchanged
        np.testing.assert_allclose(fused.loc[case, "prob_MEL"], fallback.loc[case, "prob_MEL"])
    own = pd.read_csv(run / "cells" / "dsc_macro_meta_emb" / "fold_0" / "predictions.csv", dtype={"id": str})
    assert not set(own["id"]) & no_clinical  # the fusion model itself never saw a missing image
    assert set(_predictions(run, "macro_noemb")["id"]) == test - no_clinical  # no fallback: not scored
    cases = json.loads((run / "cases.json").read_text())
    assert cases["cases"] - cases["with_clinical"] == len(no_clinical)


def test_cells_record_selection_and_the_forest_its_grid_search(grid):
    _, run, _ = grid
    selection = json.loads((run / "cells" / "dsc_macro_meta_emb" / "fold_0" / "selection.json").read_text())
    assert 1 <= selection["chosen_epoch"] <= 2 and len(selection["history"]) == 2
    forest = json.loads((run / "cells" / "meta_rf" / "fold_0" / "selection.json").read_text())
    assert forest["grid_size"] == 2 and forest["best_params"]["max_depth"] in (None, 3)
    names = json.loads((run / "metadata_vector.json").read_text())["feature_names"]
    assert set(forest["feature_importances"]) == set(names)
    assert "elevation_nodular" in names and "site_head neck" in names
    assert abs(sum(forest["feature_importances"].values()) - 1.0) < 1e-6


def test_two_image_rows_can_start_from_their_members_towers(grid):
    from skinkeras.saving import load_model
    from skinkeras.systems.fusion import rows as table_rows
    from skinkeras.systems.fusion.model import build_fusion_model
    from skinkeras.systems.fusion.train import rows_to_train, start_towers

    _, run, _ = grid
    member = run / "cells" / "dsc_meta_emb" / "fold_0" / "model.keras"
    source = load_model(member, compile=False).get_layer("dsc_tower").get_weights()
    features = len(json.loads((run / "metadata_vector.json").read_text())["feature_names"])
    for row_id, tower in (("dsc_macro_meta_emb", "dsc_tower"), ("dsc_macro_meta_emb_shared", "shared_tower")):
        model = build_fusion_model(table_rows.ROWS_BY_ID[row_id], num_classes=5, backbone="TinyCNN", image_size=32,
                                   metadata_features=features, embedding_units=(8, 8))
        assert start_towers(model, [member]) == [f"{tower} <- dsc_meta_emb"]
        for got, want in zip(model.get_layer(tower).get_weights(), source):
            np.testing.assert_array_equal(got, want)
    config = tiny_config(run, "fusion.tower_init=members", "fusion.rows=dsc_macro_meta_emb_shared,dsc_macro_noemb")
    assert rows_to_train(config) == ["dsc_meta_emb", "macro_noemb", "dsc_noemb", "dsc_macro_meta_emb_shared",
                                     "dsc_macro_noemb"]


def test_resume_keeps_finished_cells_and_trains_added_rows(grid, tmp_path):
    import shutil

    from skinkeras.runs import train_experiment

    _, run, _ = grid
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    kept = copy / "cells" / "dsc_meta_emb" / "fold_0" / "predictions.csv"
    before = kept.stat().st_mtime_ns
    shutil.rmtree(copy / "cells" / "macro_noemb")
    config = json.loads((copy / "config.json").read_text())
    config["fusion"]["rows"] = ROWS.split(",") + ["dsc_noemb"]
    (copy / "config.json").write_text(json.dumps(config))
    summary = train_experiment(None, copy, resume=True, verbose=0)
    assert "dsc_noemb" in summary["rows"] and (copy / "cells" / "macro_noemb" / "fold_0" / "predictions.csv").is_file()
    assert kept.stat().st_mtime_ns == before


def test_evaluate_writes_table1_with_intervals_and_the_fusion_test(grid):
    from skinkeras.runs import evaluate_run

    _, run, _ = grid
    metrics, _ = evaluate_run(run, n_resamples=200)
    rows = metrics["rows"]
    assert set(rows) == {"dsc_meta_emb", "meta_rf", "dsc_macro_meta_emb", "macro_noemb"}
    for row in rows.values():
        assert set(row["estimate"]) == {"accuracy", "map", "auc_melanoma", "auc_cancer"}
        low, high = row["ci"]["map"]
        assert low <= row["estimate"]["map"] <= high
    assert rows["dsc_macro_meta_emb"]["predicted_by_fallback"] > 0
    assert [(t["row"], t["against"]) for t in metrics["permutation"]] == []  # no dsc-only row was trained
    out = run / "evaluation_test"
    table = (out / "table1.md").read_text()
    assert "dsc + macro + meta" in table and "paper 0.729" in table and "by dsc_meta_emb" in table
    assert (out / "map.png").stat().st_size > 0 and (out / "importances.png").stat().st_size > 0


def test_predict_uses_the_clinical_image_or_the_fallback_row(grid):
    from skinkeras.data.images import read_image_rgb
    from skinkeras.runs import load_predictor

    root, run, _ = grid
    predictor = load_predictor(run)
    assert predictor.kind == "fusion run" and predictor.extra_inputs == ("clinical", "elevation")
    derm_path, clinic = _paired_case(root)
    derm = read_image_rgb(derm_path)
    with_clinical = predictor.predict(derm, None, "female", "back", clinical=str(clinic), elevation="flat")
    assert predictor.last_used == "dsc_macro_meta_emb"
    without = predictor.predict(derm, None, "female", "back", elevation="flat")
    assert predictor.last_used == "dsc_meta_emb"
    assert with_clinical.shape == without.shape == (5,) and abs(with_clinical.sum() - 1) < 1e-5
    with pytest.raises(SkinkerasError, match="elevation must be one of"):
        predictor.predict(derm, clinical=str(clinic), elevation="very high")
    with pytest.raises(SkinkerasError, match="site must be one of"):
        predictor.predict(derm, site="moon")


def test_predict_command_line(grid):
    root, run, _ = grid
    derm, clinic = _paired_case(root)
    command = [sys.executable, "-m", "skinkeras", "predict", str(run), "--image", str(derm),
               "--sex", "female", "--site", "back", "--meta", "elevation=nodular", "--json"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    both = json.loads(subprocess.run(command + ["--clinical", str(clinic)], capture_output=True,
                                     text=True, check=True, env=env).stdout)
    alone = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)
    assert both[0]["predicted_by"] == "dsc_macro_meta_emb" and alone[0]["predicted_by"] == "dsc_meta_emb"


def test_saved_model_export_matches_the_predictor_with_and_without_clinical_images(grid, tmp_path):
    from skinkeras.runs import export_run

    _, run, _ = grid
    result = export_run(run, "saved_model", out_dir=tmp_path / "sm")
    verification = result["verification"]
    assert verification["passed"], verification["failures"]
    assert set(verification["predicted_by"]) == {"dsc_macro_meta_emb", "dsc_meta_emb"}
    encoding = json.loads((tmp_path / "sm" / "metadata_encoding.json").read_text())
    assert {"dermoscopic", "clinical", "has_clinical", "elevation"} <= set(encoding["inputs"])
    with pytest.raises(SkinkerasError, match="saved_model"):
        export_run(run, "tflite", out_dir=tmp_path / "t.tflite")


@pytest.mark.parametrize("override, message", [
    ("fusion.protocol=loo", "fusion.protocol must be one of"),
    ("fusion.rows=dsc_emb,nope", "unknown rows"),
    ("fusion.deploy_row=nope", "deploy_row"),
    ("fusion.epochs=0", "fusion.epochs must be"),
])
def test_bad_settings_fail_before_training(tmp_path, override, message):
    from skinkeras.runs import train_experiment

    with pytest.raises(SkinkerasError, match=message):
        train_experiment(tiny_config(tmp_path, override), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_folder_csv_with_a_clinical_column_trains_a_fusion_row(grid, tmp_path):
    """A clinic's own paired data: labels.csv with image, clinical, label, sex, site (no split: a
    lesion-grouped one is made)."""
    from skinkeras.runs import train_experiment

    root, _, _ = grid
    meta = pd.read_csv(root / "meta" / "meta.csv", dtype=str, keep_default_na=False)
    from skinkeras.data.derm7pt import DIAGNOSIS_GROUPS

    frame = pd.DataFrame({"image": "images/" + meta["derm"],
                          "clinical": meta["clinic"].map(lambda c: f"images/{c}" if c else ""),
                          "label": meta["diagnosis"].str.lower().map(DIAGNOSIS_GROUPS), "sex": meta["sex"],
                          "site": meta["location"], "lesion_id": meta["case_num"]})
    frame.to_csv(root / "labels.csv", index=False)
    try:
        summary = train_experiment(tiny_config(root, "data.dataset=folder", "fusion.rows=dsc_macro_emb",
                                               "fusion.epochs=1"), tmp_path / "run", verbose=0)
    finally:
        (root / "labels.csv").unlink()
    assert summary["rows"] == ["dsc_emb", "dsc_macro_emb"]
    assert summary["with_clinical"] == summary["cases"] - int((frame["clinical"] == "").sum())
    vector = json.loads((tmp_path / "run" / "metadata_vector.json").read_text())
    assert vector["fields"] == ["age", "sex", "site"]  # no elevation column: left out


def test_cv_protocol_scores_every_fold_model_on_the_test_split(grid, tmp_path):
    """The paper's protocol: K folds over train + valid, each fold's model predicts the official test
    split; the report gives the mean (sd) over folds and the interval of the folds' mean."""
    from skinkeras.runs import evaluate_run, train_experiment

    root, _, _ = grid
    run = tmp_path / "cv"
    train_experiment(tiny_config(root, "fusion.protocol=cv", "fusion.folds=2", "fusion.rows=dsc_emb",
                                 "fusion.epochs=1"), run, verbose=0)
    folds = pd.read_csv(run / "case_folds.csv", dtype={"image_id": str})
    split = pd.read_csv(run / "split.csv", dtype=str, keep_default_na=False).set_index("image_id")["split"]
    assert set(folds["image_id"]) == set(split[split.isin(["train", "val"])].index)
    assert sorted(folds["fold"].unique()) == [0, 1]
    predictions = _predictions(run, "dsc_emb")
    test = set(split[split == "test"].index)
    for k in (0, 1):
        assert set(predictions.loc[predictions["fold"] == k, "id"]) == test
    metrics, _ = evaluate_run(run, n_resamples=100)
    row = metrics["rows"]["dsc_emb"]
    assert row["folds"] == 2 and row["fold_sd"]["accuracy"] is not None and row["cases"] == len(test)
    assert "folds" in (run / "evaluation_test" / "table1.md").read_text()


def test_clinical_rows_on_a_dataset_without_clinical_images_fail_in_one_line(tmp_path):
    from skinkeras.data.synth import synthesize
    from skinkeras.runs import train_experiment

    synthesize("folder", tmp_path / "data", n=20, seed=0, image_size=(40, 30))
    with pytest.raises(SkinkerasError, match="need clinical images and no case"):
        train_experiment(tiny_config(tmp_path / "data", "data.dataset=folder", "fusion.rows=dsc_macro_emb"),
                         tmp_path / "run", verbose=0)


def test_frozen_towers_keep_their_members_weights(grid, tmp_path):
    """tower_init=members with joint_freeze_towers: only what follows the concatenation trains."""
    from skinkeras.saving import load_model
    from skinkeras.runs import train_experiment

    root, _, _ = grid
    run = tmp_path / "frozen"
    train_experiment(tiny_config(root, "fusion.rows=dsc_macro_emb", "fusion.tower_init=members",
                                 "fusion.joint_freeze_towers=true", "fusion.epochs=1", "fusion.joint_epochs=2"),
                     run, verbose=0)
    selection = json.loads((run / "cells" / "dsc_macro_emb" / "fold_0" / "selection.json").read_text())
    assert selection["towers_frozen"] and selection["epochs"] == 2
    assert sorted(selection["towers_started_from"]) == ["dsc_tower <- dsc_emb", "macro_tower <- macro_emb"]
    fused = load_model(run / "cells" / "dsc_macro_emb" / "fold_0" / "model.keras", compile=False)
    for member, tower in (("dsc_emb", "dsc_tower"), ("macro_emb", "macro_tower")):
        source = load_model(run / "cells" / member / "fold_0" / "model.keras", compile=False).get_layer(tower)
        for got, want in zip(fused.get_layer(tower).get_weights(), source.get_weights()):
            np.testing.assert_array_equal(got, want)
