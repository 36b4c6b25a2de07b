"""`skinkeras evaluate EXPORT`: an export measured on a dataset from its own files, scored as a run's
evaluation; and external sets holding only some of the classes (runs and exports alike)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_export import exported

PRESENT = ("akiec", "bcc", "vasc")  # 3 of the 7 HAM10000 classes


@pytest.fixture(scope="module")
def partial_set(tmp_path_factory):
    """A `folder` dataset of the fake run's images of 3 classes, one site the run does not know
    and one unreadable image; and the run's own evaluation of it."""
    from skinkeras.runs import evaluate_run

    run_dir, _ = exported(tmp_path_factory)
    source = Path(json.loads((run_dir / "config.json").read_text())["data"]["root"])
    root = tmp_path_factory.mktemp("partial")
    lines = ["image,label,age,sex,site"]
    for line in (source / "HAM10000_metadata.csv").read_text().splitlines()[1:]:
        lesion, image_id, label, _, age, sex, site = line.split(",")[:7]
        if label in PRESENT:
            shutil.copy(next(source.rglob(f"{image_id}.jpg")), root / f"{image_id}.jpg")
            lines.append(f"{image_id}.jpg,{label},{age},{sex},{'elbow-pit' if len(lines) == 1 else site}")
    (root / "broken.jpg").write_text("not a picture")
    lines.append("broken.jpg,bcc,40,male,back")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    metrics, files = evaluate_run(run_dir, root, dataset="folder", split="all",
                                  out_dir=tmp_path_factory.mktemp("run_eval"), n_resamples=0)
    return run_dir, root, len(lines) - 2, metrics, files


def test_a_run_is_evaluated_on_the_classes_present(partial_set):
    from skinkeras.evaluation.predictions import Predictions

    run_dir, _, n, metrics, files = partial_set
    class_names = json.loads((run_dir / "preprocessing.json").read_text())["class_names"]
    assert metrics["n"] == n and metrics["class_names"] == class_names  # the broken image is left out
    assert metrics["absent_classes"] == [c for c in class_names if c not in PRESENT]
    assert {c for c in class_names if metrics["per_class"][c]["support"]} == set(PRESENT)
    recalls = [metrics["per_class"][c]["recall"] for c in PRESENT]
    assert metrics["balanced_accuracy"] == pytest.approx(np.mean(recalls))  # over the classes present
    assert Predictions.read(files["predictions"]).class_names == tuple(class_names)
    assert "Classes absent from the labels" in Path(files["report"]).read_text()


def test_an_export_scores_as_its_run_on_the_same_images(tmp_path_factory, partial_set, tmp_path, capsys):
    from skinkeras.cli import main
    from skinkeras.evaluation.predictions import Predictions

    run_dir, root, n, run_metrics, run_files = partial_set
    _, saved = exported(tmp_path_factory)
    out = tmp_path / "saved_model_eval"
    # No --dataset: the root's labels.csv says it is a `folder` set.
    assert main(["evaluate", saved["path"], "--data-root", str(root), "--out", str(out), "--resamples", "200"]) == 0
    assert f"{n} images: balanced accuracy" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == n and metrics["absent_classes"] == run_metrics["absent_classes"]
    assert metrics["export"]["kind"] == "saved_model" and metrics["split"] == "all"
    assert metrics["balanced_accuracy"] == pytest.approx(run_metrics["balanced_accuracy"])
    assert None not in metrics["balanced_accuracy_ci"]  # BCa intervals, as a run's evaluation
    assert metrics["metadata_inputs"]["sites_mapped_to_unknown"] == {"elbow-pit": 1}
    assert [item["image_id"] for item in metrics["skipped_images"]] == ["broken"]
    mine = Predictions.read(out / "predictions.csv")
    theirs = Predictions.read(run_files["predictions"]).aligned_to(mine.ids)
    np.testing.assert_allclose(mine.probabilities(), theirs.probabilities(), atol=1e-4)
    assert list(mine.frame["y_true"]) == list(theirs.frame["y_true"])
    report = (out / "report.md").read_text()
    assert "(saved_model export)" in report and "'elbow-pit' (1)" in report and "broken" in report
    assert {"confusion_matrix.png", "roc_curves.png"} <= {p.name for p in out.iterdir()}


def test_a_tflite_file_is_evaluated_with_its_own_encoding(tmp_path_factory, partial_set, tmp_path):
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.runs import evaluate_run

    _, root, n, _, run_files = partial_set
    _, tflite = exported(tmp_path_factory, "tflite", "float32")
    metrics, files = evaluate_run(Path(tflite["path"]) / "model.tflite", root, dataset="folder", split="all",
                                  out_dir=tmp_path / "tflite_eval", n_resamples=0)
    assert metrics["n"] == n and metrics["export"]["kind"] == "tflite float32"
    mine = Predictions.read(files["predictions"])
    assert mine.models == ["tflite float32"]
    theirs = Predictions.read(run_files["predictions"]).aligned_to(mine.ids)
    np.testing.assert_allclose(mine.probabilities(), theirs.probabilities(), atol=1e-4)


def test_what_an_export_cannot_be_evaluated_on_is_a_one_line_error(tmp_path_factory, partial_set, tmp_path, capsys):
    from skinkeras.cli import main

    run_dir, root, _, _, _ = partial_set
    _, saved = exported(tmp_path_factory)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next(root.glob("ISIC_*.jpg")), other / "a.jpg")
    (other / "labels.csv").write_text("image,label\na.jpg,melanocytic\n")
    cases = [
        ([saved["path"], "--data-root", str(root), "--split", "test", "--out", str(tmp_path / "x")],
         "an export has no split of its own"),
        ([saved["path"], "--data-root", str(root)], "needs --out DIR"),
        ([saved["path"], "--data-root", str(root), "--out", str(tmp_path / "x"), "--multi-crop"],
         "--multi-crop needs a run directory"),
        ([saved["path"], "--data-root", str(other), "--out", str(tmp_path / "x")],
         "labels ['melanocytic'] are not among the model's classes"),
        ([str(run_dir), "--data-root", str(other), "--dataset", "folder", "--split", "all", "--out", str(tmp_path / "y")],
         "labels ['melanocytic'] are not among the model's classes"),
    ]
    for args, message in cases:
        assert main(["evaluate", *args]) == 2, args
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("skinkeras: error:") and message in last, last
    assert not (Path(saved["path"]) / "metrics.json").exists()  # nothing written into the export
