"""Paper 003's grid end to end on a tiny generated HAM10000: two lesion-grouped splits, cells per
(row, split), flat and hierarchical rows (CEL, CB, SPL), resume per cell, the Tables 2-5 report with
permutation tests against the CEL baseline. Tiny models (TinyCNN at 32 px, 1 epoch): this tests the
protocol and the contracts, not accuracy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from skinkeras.experiments import ExperimentConfig, apply_overrides

ROWS = ("flat_adam_cel_none", "flat_adam_cel_cb", "hierarchical_adam_cel_none", "hierarchical_adam_cel_spl")
TINY = ["task=weighting", "data.dataset=ham10000", "data.image_size=32", "data.batch_size=16", "data.augment=false",
        "model.backbone=TinyCNN", "model.weights=", "weighting.flat_epochs=1", "weighting.hierarchical_epochs=1",
        "weighting.adam_learning_rate=1e-3", "weighting.lstm_units=8", "weighting.n_permutations=200",
        "train.adam_epsilon=1e-7", f"weighting.rows={','.join(ROWS)}"]


def tiny_config(root):
    return apply_overrides(ExperimentConfig(name="tiny_weighting"), TINY + [f"data.root={root}"])


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from skinkeras.data.synth import synthesize
    from skinkeras.runs import train_experiment

    root = tmp_path_factory.mktemp("ham10000")
    synthesize("ham10000", root, n=140, seed=3, image_size=(64, 48), force=True)
    run = tmp_path_factory.mktemp("weighting") / "run"
    summary = train_experiment(tiny_config(root), run, verbose=0)
    return root, run, summary


def test_cells_for_every_row_and_split_on_lesion_grouped_splits(grid):
    from skinkeras.evaluation.predictions import Predictions

    root, run, summary = grid
    assert summary["rows"] == list(ROWS) and summary["splits"] == 2
    splits = pd.read_csv(run / "splits.csv", dtype=str, keep_default_na=False)
    for k in (0, 1):
        column = splits[f"split_{k}"]
        assert set(column) == {"train", "val", "test"}
        lesions = {part: set(splits.loc[column == part, "lesion_id"]) for part in ("train", "val", "test")}
        assert not lesions["train"] & lesions["test"] and not lesions["val"] & lesions["test"]
        assert not lesions["train"] & lesions["val"]
        assert 0.1 < (column == "test").mean() < 0.3
        for row in ROWS:
            cell = Predictions.read(run / "cells" / row / f"split_{k}" / "predictions.csv")
            assert set(cell.frame["fold"]) == {k} and cell.models == [row]
            assert set(cell.ids) == set(splits.loc[column == "test", "image_id"])
    assert (splits["split_0"] != splits["split_1"]).any()  # two different random splits
    merged = Predictions.read(run / "predictions.csv")
    assert merged.models == list(ROWS) and len(merged) == len(ROWS) * sum((splits[f"split_{k}"] == "test").sum() for k in (0, 1))


def test_hierarchical_cells_predict_seven_class_probabilities(grid):
    from skinkeras.evaluation.predictions import Predictions

    _, run, _ = grid
    cell = Predictions.read(run / "cells" / "hierarchical_adam_cel_spl" / "split_1" / "predictions.csv")
    probabilities = cell.probabilities()
    assert cell.class_names == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    selection = json.loads((run / "cells" / "hierarchical_adam_cel_spl" / "split_1" / "selection.json").read_text())
    assert selection["sample_selection"] == "spl" and selection["chosen_epoch"] == 1
    cb = json.loads((run / "cells" / "flat_adam_cel_cb" / "split_0" / "selection.json").read_text())
    assert cb["class_weights"] == "original"


def test_hierarchy_loss_is_the_sum_over_the_path_and_cb_weights_multiply_it():
    from skinkeras.models.hierarchical import HAM10000_TAXONOMY
    from skinkeras.systems.weighting.data import hierarchy_targets
    from skinkeras.systems.weighting.model import HierarchyLoss

    targets = hierarchy_targets(HAM10000_TAXONOMY, 7)
    df = HAM10000_TAXONOMY.class_names.index("df")
    assert targets[df].sum() == 3 and targets[HAM10000_TAXONOMY.class_names.index("nv")].sum() == 2
    p = np.full((1, targets.shape[1]), 0.5, np.float32)
    loss = HierarchyLoss(reduction=None)
    np.testing.assert_allclose(float(loss(targets[df][None], p)[0]), 3 * np.log(2), rtol=1e-5)
    weighted = HierarchyLoss()(targets[[df]], p, sample_weight=np.array([4.0]))
    np.testing.assert_allclose(float(weighted), 4 * 3 * np.log(2), rtol=1e-5)


def test_resume_keeps_finished_cells(grid, tmp_path):
    from skinkeras.runs import train_experiment

    _, run, _ = grid
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    kept = copy / "cells" / "flat_adam_cel_none" / "split_0" / "predictions.csv"
    before = kept.stat().st_mtime_ns
    redo = copy / "cells" / "flat_adam_cel_cb" / "split_1"
    shutil.rmtree(redo)
    summary = train_experiment(None, copy, resume=True, verbose=0)
    assert kept.stat().st_mtime_ns == before
    assert (redo / "predictions.csv").is_file() and summary["rows"] == list(ROWS)
    assert summary["seconds_per_row_this_session"]["flat_adam_cel_none"] < summary["seconds_per_row_this_session"][
        "flat_adam_cel_cb"]


def test_report_has_every_row_and_permutation_tests_against_the_cel_baseline(grid):
    from skinkeras.runs import evaluate_run

    _, run, _ = grid
    metrics, files = evaluate_run(run, n_resamples=200)
    assert set(metrics["rows"]) == set(ROWS)
    assert metrics["tables"]["2"] == list(ROWS[:2]) and metrics["tables"]["3"] == list(ROWS[2:])
    tests = {(t["row"], t["split"]): t for t in metrics["permutation"]}
    assert set(tests) == {(r, k) for r in ("flat_adam_cel_cb", "hierarchical_adam_cel_spl") for k in (0, 1)}
    assert tests[("hierarchical_adam_cel_spl", 0)]["against"] == "hierarchical_adam_cel_none"
    assert all(0 < t["p_value"] <= 1 for t in tests.values())
    row = metrics["rows"]["flat_adam_cel_cb"]
    assert row["paper"]["balanced_accuracy"] == 78.8 and set(row["splits"]) == {"0", "1"}
    low, high = row["splits"]["0"]["ci"]["balanced_accuracy"]
    assert low <= row["splits"]["0"]["balanced_accuracy"] <= high
    text = open(files["markdown"]).read()
    assert "Table 2: flat model, Adam" in text and "Table 3: hierarchical model, Adam" in text
    assert "Table 4" not in text and all(r in text for r in ROWS)
    for role in ("metrics", "pvalues", "bacc_plot"):
        assert open(files[role], "rb").read()


def test_metrics_agree_with_compute_metrics():
    from skinkeras.evaluation.metrics import compute_metrics
    from skinkeras.systems.weighting import stats

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = rng.dirichlet(np.ones(4), 200)
    ours = stats.summary(y, p.argmax(1), 4)
    theirs = compute_metrics(y, p, list("abcd"), n_resamples=0)
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
    assert ours["balanced_accuracy"] == pytest.approx(theirs["balanced_accuracy"])
    assert ours["mean_precision"] == pytest.approx(theirs["macro_precision"])
    assert ours["mean_f1"] == pytest.approx(theirs["macro_f1"])
