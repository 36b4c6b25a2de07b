"""The model card (skinkeras.export.model_card) from a hand-made run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinkeras.data.metadata import MetadataEncoding
from skinkeras.errors import SkinkerasError
from skinkeras.evaluation.metrics import compute_metrics
from skinkeras.experiments.config import ExperimentConfig, save_config
from skinkeras.export.model_card import CLASS_DESCRIPTIONS, MODEL_CARD_FILE, write_model_card

CLASSES = ("bkl", "mel", "nv")
SITES = ("back", "face", "lower extremity", "unknown")

# image_id, lesion_id, label, split: nv has 8 images of 6 lesions, mel 5 of 4, bkl 3 of 3.
SPLIT_ROWS = [
    ("i01", "l01", "nv", "train"), ("i02", "l01", "nv", "train"), ("i03", "l02", "nv", "train"),
    ("i04", "l03", "nv", "train"), ("i05", "l04", "nv", "val"), ("i06", "l05", "nv", "val"),
    ("i07", "l06", "nv", "test"), ("i08", "l06", "nv", "test"),
    ("i09", "l07", "mel", "train"), ("i10", "l07", "mel", "train"), ("i11", "l08", "mel", "train"),
    ("i12", "l09", "mel", "val"), ("i13", "l10", "mel", "test"),
    ("i14", "l11", "bkl", "train"), ("i15", "l12", "bkl", "val"), ("i16", "l13", "bkl", "test"),
]


def _run_dir(tmp_path, *, weights="", metrics=True, name="run"):
    run = tmp_path / name
    run.mkdir()
    config = ExperimentConfig(name="ham_mnv3l_sa")
    config.data.root = "/data/ham10000"
    config.data.image_size = 128
    config.model.backbone = "MobileNetV3Large"
    config.model.weights = weights
    save_config(config, run / "config.json")
    encoding = MetadataEncoding(age_mean=51.25, age_std=16.5, sites=SITES)
    (run / "preprocessing.json").write_text(json.dumps({
        "dataset": "ham10000",
        "class_names": list(CLASSES),
        "image_size": 128,
        "metadata": encoding.to_config(),
        "metadata_features": list(encoding.feature_names),
        "input": "raw RGB 0..255, scaled inside the model",
    }))
    lines = ["image_id,lesion_id,label,split"] + [",".join(row) for row in SPLIT_ROWS]
    (run / "split.csv").write_text("\n".join(lines) + "\n")
    (run / "run.json").write_text(json.dumps({"epochs_done": 12, "epochs_planned": 30, "best_epoch": 9,
                                              "train_seconds_total": 5400.0, "precision": "float32"}))
    if metrics:
        _write_metrics(run / "evaluation_test", seed=0)
    return run


def _write_metrics(directory, *, seed, split="test", n=60):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, n)
    y_prob = rng.dirichlet(np.ones(3), n)
    y_prob[np.arange(n), y_true] += 0.6  # mostly right, not always
    y_prob /= y_prob.sum(axis=1, keepdims=True)
    metrics = compute_metrics(y_true, y_prob, CLASSES, n_resamples=200, seed=0)
    metrics["split"] = split
    metrics["multi_crop"] = False
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def _section(text, title):
    return text.split(f"## {title}\n")[1].split("\n## ")[0]


def _row(text, first_cell):
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, (first_cell, rows)
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_card_with_metrics(tmp_path):
    run = _run_dir(tmp_path)
    metrics = json.loads((run / "evaluation_test" / "metrics.json").read_text())
    path = write_model_card(run, tmp_path / "export" / "sub")
    assert path == tmp_path / "export" / "sub" / MODEL_CARD_FILE
    assert not list(path.parent.glob("*.partial"))
    text = path.read_text()

    assert text.startswith("# Model card: ham_mnv3l_sa")
    assert "Research use only. Not for diagnosis." in text.split("## Intended use")[0]  # up front

    # Headline metrics with their intervals.
    ba_low, ba_high = metrics["balanced_accuracy_ci"]
    assert ba_low < metrics["balanced_accuracy"] < ba_high
    assert _row(text, "balanced accuracy (mean recall)") == [
        "balanced accuracy (mean recall)", f"{metrics['balanced_accuracy']:.3f}", f"{ba_low:.3f} - {ba_high:.3f}"]
    auc_low, auc_high = metrics["macro_auc_ci"]
    assert _row(text, "macro AUC (one vs rest)")[1:] == [f"{metrics['macro_auc']:.3f}",
                                                         f"{auc_low:.3f} - {auc_high:.3f}"]
    assert f"On the run's held-out test split ({metrics['n']} images)" in text
    assert "95 % BCa bootstrap (200 resamples)" in text

    # One per-class row per class, with its own numbers.
    for name in CLASSES:
        values = metrics["per_class"][name]
        label = f"{name} ({CLASS_DESCRIPTIONS[name]})"
        assert _row(_section(text, "Evaluation"), label)[1:] == [
            str(values["support"]), f"{values['precision']:.3f}", f"{values['recall']:.3f}",
            f"{values['specificity']:.3f}", f"{values['f1']:.3f}", f"{values['auc']:.3f}"]

    # Training data: counts per split and class, images (lesions), from split.csv.
    data = _section(text, "Training data")
    assert "grouped by lesion" in data
    assert _row(data, "class") == ["class", "train", "val", "test", "total"]
    assert _row(data, "nv") == ["nv", "4 (3)", "2 (2)", "2 (1)", "8 (6)"]
    assert _row(data, "mel") == ["mel", "3 (2)", "1 (1)", "1 (1)", "5 (4)"]
    assert _row(data, "bkl") == ["bkl", "1 (1)", "1 (1)", "1 (1)", "3 (3)"]
    assert _row(data, "**all**") == ["**all**", "8 (6)", "4 (4)", "4 (3)", "16 (13)"]
    assert "`/data/ham10000`" in text

    # Model and input contract, with the metadata vocabularies.
    assert _row(text, "backbone")[1] == "MobileNetV3Large"
    assert _row(text, "input size")[1] == "128 x 128 RGB"
    assert "trained from random initialisation" in _row(text, "initial backbone weights")[1]
    assert "(age - 51.25) / 16.50" in text
    assert "**sex**: female, male, unknown." in text
    assert "**site** (anatomical location): back, face, lower extremity, unknown." in text
    assert "`age_missing`" in text and "`site_lower extremity`" in text
    assert "float32 `[1, 128, 128, 3]` in 0..255" in text
    assert "class probabilities in this order: `bkl`, `mel`, `nv`." in text

    # Limitations for this run.
    assert "**Trained from scratch:**" in text
    assert "fair-skinned" in text and "Dermoscopic images only" in text
    assert "**No external validation:**" in text
    assert f"`skinkeras evaluate {run} --data-root OTHER --split all`" in text
    assert "Not evaluated yet" not in text
    assert "## This export" not in text  # no export_info given


def test_card_without_metrics_says_how_to_evaluate(tmp_path):
    run = _run_dir(tmp_path, metrics=False, weights="imagenet")
    text = write_model_card(run, tmp_path / "out").read_text()
    assert "Research use only. Not for diagnosis." in text
    assert f"**Not evaluated yet:** run `skinkeras evaluate {run} --data-root DIR`" in text
    assert "balanced accuracy (mean recall)" not in text
    assert "Trained from scratch" not in text
    assert _row(text, "initial backbone weights")[1] == "imagenet"
    assert "**sex**: female, male, unknown." in text  # the contract does not need metrics


def test_card_lists_other_evaluations_and_external_validation(tmp_path):
    run = _run_dir(tmp_path)
    other = _write_metrics(run / "evaluation_all", seed=5, split="all", n=40)
    text = write_model_card(run, tmp_path / "out").read_text()
    row = _row(text, "`evaluation_all`")
    low, high = other["balanced_accuracy_ci"]
    assert row[:4] == ["`evaluation_all`", "all", "40", f"{other['balanced_accuracy']:.3f} ({low:.3f} - {high:.3f})"]
    assert "**External validation:** evaluated on another set (`evaluation_all`)" in text
    assert "**No external validation:**" not in text


def test_card_renders_export_info(tmp_path):
    run = _run_dir(tmp_path)
    out = tmp_path / "export"
    out.mkdir()
    (out / "model_int8.tflite").write_bytes(b"\0" * 2048)
    info = {
        "format": "tflite",
        "quantization": "int8",
        "files": ["model_int8.tflite", "labels.txt"],
        "verification": {"passed": False, "top1_agreement": np.float64(0.9712), "max_abs_diff": 0.031,
                         "images": 200},
        "signature": "serving_default",
    }
    text = write_model_card(run, out, export_info=info).read_text()
    section = text.split("## This export")[1].split("## Known limitations")[0]
    assert _row(section, "format")[1] == "tflite"
    assert _row(section, "quantization")[1] == "int8"
    assert _row(section, "signature")[1] == "serving_default"
    assert _row(section, "`model_int8.tflite`")[1] == "2.00 KiB"
    assert _row(section, "`labels.txt`")[1] == "missing"
    assert "**FAILED**" in section
    assert _row(section, "top1_agreement")[1] == "0.9712"
    assert _row(section, "max_abs_diff")[1] == "0.031"
    assert "**Quantised model:**" in text
    # The run's backbone is the hard-swish MobileNetV3Large: its int8 is the size option, not the fast one.
    assert "**int8 is the size option here:**" in text and "ham10000_phone_int8" in text
    from skinkeras.export.model_card.describe import int8_speed_note

    assert "size option" not in int8_speed_note("MobileNetV3SmallMinimalistic")
    sizes = write_model_card(run, out, export_info={"format": "saved_model", "files": {"saved_model": 3 * 1024**2},
                                                    "verification": {"passed": True}}).read_text()
    assert _row(sizes, "`saved_model`")[1] == "3.00 MiB" and "**PASSED**" in sizes
    assert "**Quantised model:**" not in sizes and "size option" not in sizes


def test_card_counts_parameters_of_best_model(tmp_path):
    import keras

    run = _run_dir(tmp_path)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(4)(inputs)))
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)  # Adam moments: in the file, not parameters
    model.save(run / "best.keras")
    text = write_model_card(run, tmp_path / "out").read_text()
    assert model.count_params() == 6 * 4 + 4 + 4 * 3 + 3 == 43
    assert _row(text, "parameters")[1] == "43 (weights in best.keras)"


def test_card_errors(tmp_path):
    with pytest.raises(SkinkerasError, match="no run directory"):
        write_model_card(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkinkerasError, match="preprocessing.json"):
        write_model_card(tmp_path / "empty", tmp_path / "out")
    run = _run_dir(tmp_path)
    (run / "evaluation_test" / "metrics.json").write_text("{not json")
    text = write_model_card(run, tmp_path / "out").read_text()  # still a card, saying why
    assert "could not be read" in text and "Not evaluated yet" in text
