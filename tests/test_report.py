"""write_report: metrics.json with the contract keys, report.md tables, valid PNG plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from skinkeras.evaluation import METRICS_KEYS, compute_metrics
from skinkeras.evaluation.report import REPORT_FILES, markdown_report, write_report

NAMES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def predictions(n=150, num_classes=7, seed=0, absent=()):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    for c in absent:
        y[y == c] = (c + 1) % num_classes
    logits = rng.normal(size=(n, num_classes))
    logits[np.arange(n), y] += 1.5
    prob = np.exp(logits)
    return y, prob / prob.sum(axis=1, keepdims=True)


def test_write_report_files_keys_and_images(tmp_path):
    y, prob = predictions(absent=(3,))
    metrics = compute_metrics(y, prob, NAMES, n_resamples=300, seed=0, one_vs_rest=["mel"])
    paths = write_report(metrics, tmp_path / "eval", y, prob, NAMES)
    assert set(paths) == set(REPORT_FILES)
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0

    written = json.loads(paths["metrics"].read_text())
    assert set(METRICS_KEYS) <= set(written)
    assert written["class_names"] == NAMES
    assert written["n"] == len(y)
    assert set(written["per_class"]) == set(NAMES)
    for row in written["per_class"].values():
        assert {"precision", "recall", "specificity", "f1", "auc", "ap", "support"} <= set(row)
    assert written["per_class"]["df"]["auc"] is None  # absent class: null, valid JSON
    assert written["balanced_accuracy"] == pytest.approx(metrics["balanced_accuracy"])
    assert len(written["balanced_accuracy_ci"]) == 2 and len(written["macro_auc_ci"]) == 2
    assert np.asarray(written["confusion_matrix"]).shape == (7, 7)
    assert np.asarray(written["confusion_matrix"]).sum() == len(y)

    for role in ("confusion_matrix", "roc_curves", "per_class_bars"):
        with Image.open(paths[role]) as image:
            image.verify()  # a truncated or corrupt PNG raises here
        with Image.open(paths[role]) as image:
            assert image.format == "PNG"
            assert image.width > 200 and image.height > 200
            pixels = np.asarray(image.convert("L"))
            assert pixels.std() > 5  # something was drawn, not a blank canvas

    report = paths["report"].read_text()
    assert "| balanced accuracy |" in report
    assert f"{metrics['balanced_accuracy']:.3f}" in report
    assert "| class | support |" in report
    for name in NAMES:
        assert f"| {name} |" in report
    assert "mel vs rest" in report
    assert "left out of every macro mean): df" in report
    for name in ("confusion_matrix.png", "roc_curves.png", "per_class_f1_recall.png"):
        assert f"]({name})" in report


def test_markdown_without_intervals_and_nan_become_null(tmp_path):
    y, prob = predictions(n=40, num_classes=2, seed=3)
    metrics = compute_metrics(y, prob, ["benign", "malignant"], n_resamples=0)
    text = markdown_report(metrics)
    assert "| balanced accuracy |" in text and "n/a" in text
    assert "malignant vs rest" in text and "sensitivity >= 0.98" in text
    metrics["extra"] = float("nan")
    paths = write_report(metrics, tmp_path, y, prob, ["benign", "malignant"])
    written = json.loads(paths["metrics"].read_text())  # strict JSON: no NaN tokens
    assert written["extra"] is None
    assert "NaN" not in paths["metrics"].read_text()
