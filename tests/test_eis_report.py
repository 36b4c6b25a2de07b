"""Paper 000's Table 1 report: rows as data, evaluated set, operating point, BCa, permutations, files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from skinkeras.evaluation import batched
from skinkeras.evaluation.predictions import Predictions
from skinkeras.systems.eis import rows, stats
from skinkeras.systems.eis.report import table1

CLASSES = ("benign", "malignant")


def fake_predictions(separations: dict, *, benign=150, melanoma=50, other=10, seed=0):
    """Rows named by `separations` (row id -> how far malignant scores sit above benign ones)."""
    rng = np.random.default_rng(seed)
    n = benign + melanoma + other
    ids = [f"L{i}" for i in range(n)]
    diagnosis = ["nevus"] * benign + ["melanoma"] * melanoma + ["bcc"] * other
    malignant = np.r_[np.zeros(benign), np.ones(melanoma + other)].astype(bool)
    parts = []
    for row_id, separation in separations.items():
        p = 1 / (1 + np.exp(-(separation * np.where(malignant, 1, -1) + rng.normal(size=n))))
        parts.append(Predictions.from_probabilities(
            ids=ids, probabilities=np.c_[1 - p, p], class_names=CLASSES, model=row_id,
            y_true=np.where(malignant, "malignant", "benign").tolist()))
    return Predictions.concat(parts), dict(zip(ids, diagnosis))


def test_rows_are_the_papers_seventeen_with_its_figures():
    assert len(rows.ROWS) == 17 and len(set(rows.ROW_IDS)) == 17
    assert len({r.label for r in rows.ROWS}) == 17
    assert [sum(r.group == g for r in rows.ROWS) for g in rows.GROUPS] == [5, 2, 4, 6]
    for row in rows.ROWS:
        assert row.kind in rows.KINDS
        if row.kind == "ensemble":
            assert len(row.members) == 2 and all(m in rows.ROWS_BY_ID for m in row.members)
        if row.kind == "joint":
            assert row.fusion in ("lin", "fc", "ca") and row.cnn in ("dense", "serx")
    assert rows.ROWS_BY_ID["ens_gru_fcnn"].members == ("gru_max", "fcnn")
    assert rows.ROWS_BY_ID["gru_last"].pooling == "last"
    # Every row has the paper's figures, and the two pretrained CNN variants too.
    assert set(rows.PAPER_TABLE1) == {r.label for r in rows.ROWS} | {"Dense Pre", "SE-RX Pre"}
    # Spot checks against the paper's text (Table 1).
    assert rows.paper_figures("gru_max")["specificity"] == (34.7, 31.0, 38.8)
    assert rows.paper_figures("serx_gru_ca")["auc"] == (91.2, 89.0, 93.0)
    assert rows.paper_figures("dense", pretrained=True)["sensitivity"] == (98.0, 94.8, 99.5)
    assert rows.paper_figures("ens_serx_dense")["auc"] == (89.9, 82.2, 92.1)
    assert rows.row_label("serx", True) == "SE-RX Pre" and rows.row_label("serx") == "SE-RX"
    assert rows.row_label("gru_max", True) == "GRU state-max-pool" and rows.row_label("mine") == "mine"


def test_evaluated_set_keeps_benign_and_melanoma_only():
    predictions, diagnosis = fake_predictions({"svm": 1.0, "fcnn": 1.0})
    ids, counts, notes = stats.evaluated_ids(predictions, diagnosis)
    assert counts == {"lesions": 200, "benign": 150, "melanoma": 50, "excluded_malignant": {"bcc": 10}}
    assert all(diagnosis[i] != "bcc" for i in ids) and "bcc 10" in notes[0]
    same, counts_series, _ = stats.evaluated_ids(predictions, pd.Series(diagnosis))
    assert same == ids and counts_series == counts
    with_column = Predictions(predictions.frame.assign(diagnosis=predictions.frame["id"].map(diagnosis)))
    assert stats.evaluated_ids(with_column)[0] == ids
    everything, counts_all, _ = stats.evaluated_ids(predictions, diagnosis, "all")
    assert len(everything) == 210 and counts_all["malignant"] == 60
    positive, scores, missing = stats.aligned_scores(predictions, ids)
    assert positive.sum() == 50 and set(scores) == {"svm", "fcnn"} and not missing


def test_fixed_threshold_keeps_the_target_sensitivity_and_counts_ties_positive():
    rng = np.random.default_rng(1)
    positive = np.r_[np.ones(100, bool), np.zeros(300, bool)]
    score = np.round(rng.normal(size=400) + positive, 1)  # many ties
    result = stats.row_metrics(positive, score, n_resamples=200, seed=0)
    assert result["sensitivity"] >= 0.98
    assert result["tp"] == int((score[positive] >= result["threshold"]).sum())
    assert result["fp"] == int((score[~positive] >= result["threshold"]).sum())
    assert result["specificity"] == pytest.approx(result["tn"] / 300)
    for name in ("sensitivity", "specificity", "auc"):
        low, high = result[name + "_ci"]
        assert low <= result[name] <= high


def test_partition_specificity_equals_the_library():
    rng = np.random.default_rng(2)
    positive = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=(50, 300)) + positive, 1)
    ours = stats.specificity_at_sensitivity(0.98)(positive, scores)
    np.testing.assert_array_equal(ours, batched.specificity_at_sensitivity_batched(positive, scores, 0.98))
    order = np.argsort(~positive, kind="stable")  # positives first: the slicing path
    ours_sorted = stats.specificity_at_sensitivity(0.98)(positive[order], scores[:, order])
    np.testing.assert_array_equal(ours_sorted, ours)


def test_bca_of_fixed_threshold_specificity_matches_scipy():
    rng = np.random.default_rng(3)
    positive = np.r_[np.ones(60, bool), np.zeros(140, bool)]
    score = rng.normal(size=200) + positive
    threshold = 0.1
    _, specificity = stats.fixed_threshold_statistics(positive, threshold)
    ours = stats.bootstrap_ci(specificity, score, n_resamples=500, seed=7)

    def gathered(pos, values, axis=-1):
        negative = ~pos.astype(bool)
        return (negative & (values < threshold)).sum(axis=axis) / negative.sum(axis=axis)

    reference = scipy.stats.bootstrap((positive, score), gathered, n_resamples=500, paired=True,
                                      vectorized=True, method="BCa", rng=7).confidence_interval
    assert ours.low == pytest.approx(reference.low, abs=1e-9)  # same seed: the same resamples
    assert ours.high == pytest.approx(reference.high, abs=1e-9)  # same seed: the same resamples


def test_permutation_matrix_separates_a_better_row_and_not_a_copy():
    predictions, diagnosis = fake_predictions({"gru_max": 2.5, "gru_last": 0.5})
    ids, _, _ = stats.evaluated_ids(predictions, diagnosis)
    positive, scores, _ = stats.aligned_scores(predictions, ids)
    scores["copy"] = scores["gru_max"].copy()
    tests = stats.permutation_matrix(positive, scores, n_permutations=300, seed=0)
    p = {(pair["a"], pair["b"]): pair["p_value"] for pair in tests["pairs"]}
    assert p[("gru_max", "gru_last")] < 0.05 and p[("gru_last", "copy")] < 0.05
    assert p[("gru_max", "copy")] > 0.99
    matrix = np.array(tests["matrix"])
    assert np.allclose(matrix, matrix.T) and np.all(np.diag(matrix) == 1)


def test_table1_writes_every_file_and_lists_rows_not_run(tmp_path):
    present = {"svm": 0.8, "gru_max": 1.6, "dense": 1.2, "ens_dense_gru": 1.8, "serx_gru_ca": 2.4}
    predictions, diagnosis = fake_predictions(present)
    metrics, files = table1(predictions, tmp_path, diagnosis=diagnosis, n_resamples=200, n_permutations=200,
                            pretrained=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["table1.md", "table1.html", "metrics.json", "pvalues.csv", "roc.png"])
    assert all(path.stat().st_size > 0 for path in files.values())
    saved = json.loads(files["metrics"].read_text())
    assert list(saved["rows"]) == ["svm", "gru_max", "dense", "ens_dense_gru", "serx_gru_ca"]
    assert set(saved["not_run"]) == set(rows.ROW_IDS) - set(present) and len(saved["not_run"]) == 12
    assert saved["counts"]["benign"] == 150 and saved["counts"]["melanoma"] == 50
    assert saved["n_resamples"] == 200 and saved["n_permutations"] == 200 and saved["seed"] == 0
    assert saved["rows"]["dense"]["label"] == "Dense Pre"
    assert saved["rows"]["dense"]["paper"]["specificity"] == [34.4, 31.3, 38.4]
    assert all(r["sensitivity"] >= 0.98 and None not in r["specificity_ci"] for r in saved["rows"].values())
    markdown = files["markdown"].read_text()
    for row_id in rows.ROW_IDS:
        assert f"| {row_id} |" in markdown
    assert markdown.count("not run | not run | not run") == 12
    assert "150 benign, 50 melanoma" in markdown and "ties count positive" in markdown
    assert "34.4 (31.3 - 38.4)" in markdown  # the paper's Dense Pre specificity beside ours
    html = files["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<b>" in html and "SE-RX-GRU CA" in html
    pvalues = pd.read_csv(files["pvalues"], index_col=0)
    assert pvalues.shape == (5, 5) and np.allclose(pvalues.to_numpy(), pvalues.to_numpy().T)


def test_rows_missing_lesions_are_compared_on_the_shared_ones(tmp_path):
    predictions, diagnosis = fake_predictions({"svm": 1.0, "fcnn": 1.5})
    frame = predictions.frame
    frame = frame[~((frame["model"] == "fcnn") & (frame["id"] == "L0"))]
    metrics, _ = table1(Predictions(frame), tmp_path, diagnosis=diagnosis, n_resamples=100, n_permutations=100)
    assert metrics["counts"]["scored"] == 199 and "fcnn 1" in metrics["notes"][-1]


def test_eis_stats_bench_is_registered_and_runs_small(capsys):
    from skinkeras.cli import build_parser
    from skinkeras.systems.eis import bench

    args = build_parser().parse_args(["bench", "eis-stats", "--benign", "60", "--melanoma", "20",
                                      "--other-malignant", "5", "--resamples", "50", "--permutations", "50"])
    assert args.func is bench.run
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 17 and result["pairs"] == 136 and result["lesions"] == 80
    assert result["ci_seconds"] > 0 and len(result["ci_seconds_per_row"]) == 17
