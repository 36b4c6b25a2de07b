"""What a careful user and a fault injector hit (issue 18, item 7): silent drops, silent changes,
tracebacks and a path escape, each now a named problem or a one-line error. Tiny generated data."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinkeras.errors import SkinkerasError
from skinkeras.experiments import ExperimentConfig, apply_overrides


def _kinds(table) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in table.problems:
        found.setdefault(problem.kind, []).append(problem.image_id)
    return found


@pytest.fixture(scope="module")
def ham(tmp_path_factory) -> Path:
    from skinkeras.data.synth import synthesize

    root = tmp_path_factory.mktemp("ham")
    synthesize("ham10000", root, n=12, seed=1, image_size=(24, 18))
    return root


def _copy(ham: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ham"
    shutil.copytree(ham, root)
    return root


def _write_png(path: Path, size=(20, 16)):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), 120, np.uint8))


# ---- silent drops and silent changes ---------------------------------------------------------------
def test_a_tiff_the_pipeline_cannot_decode_is_unreadable_before_training(tmp_path, caplog):
    import cv2
    import tensorflow as tf

    from skinkeras.data.images import check_images
    from skinkeras.engine.run_data import check_images_once
    from skinkeras.engine.run_directory import RunDirectory

    tif = tmp_path / "ISIC_tif.tif"
    cv2.imwrite(str(tif), np.full((16, 16, 3), 90, np.uint8))
    assert cv2.imread(str(tif)) is not None  # OpenCV reads it ...
    with pytest.raises(tf.errors.InvalidArgumentError):  # ... the pipeline's decoder does not
        tf.io.decode_image(tf.io.read_file(str(tif)), channels=3)
    png = tmp_path / "ISIC_png.png"
    _write_png(png)
    problems = check_images([tif, png], ["ISIC_tif", "ISIC_png"])
    assert [(p.image_id, p.kind) for p in problems] == [("ISIC_tif", "unreadable")]
    assert ".tif format" in problems[0].detail

    from skinkeras.data.table import SampleTable

    samples = pd.DataFrame({"image_id": ["ISIC_tif", "ISIC_png"], "image_path": [str(tif), str(png)],
                            "label": "a", "label_index": 0, "lesion_id": ["l1", "l2"], "age": np.nan,
                            "sex": "unknown", "site": "unknown", "mask_path": "", "split": "train"})
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    with caplog.at_level(logging.WARNING):
        kept = check_images_once(SampleTable("folder", tmp_path, samples, ("a",)), run)
    assert list(kept.samples["image_id"]) == ["ISIC_png"]
    assert "ISIC_tif (" in caplog.text
    assert [p["image_id"] for p in json.loads(run.skipped.read_text())] == ["ISIC_tif"]

    from skinkeras.engine.fit import images_left_out

    assert images_left_out(run) == ["ISIC_tif"]  # and so run.json's "images_left_out"


def test_unknown_sex_and_site_values_are_named_by_id(ham, tmp_path):
    from skinkeras.data.registry import load_dataset

    root = _copy(ham, tmp_path)
    csv = root / "HAM10000_metadata.csv"
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame.loc[0, "sex"] = "X"
    frame.loc[1, "localization"] = "elbow-pit"
    frame.to_csv(csv, index=False)
    table = load_dataset("ham10000", root)
    problems = {p.image_id: p.detail for p in table.problems if p.kind == "unknown_value"}
    assert problems.keys() == {frame.loc[0, "image_id"], frame.loc[1, "image_id"]}
    assert "sex 'X'" in problems[frame.loc[0, "image_id"]]
    assert "site 'elbow-pit'" in problems[frame.loc[1, "image_id"]]
    assert len(table) == len(frame)  # kept, encoded as unknown


def test_a_csv_without_age_or_localization_is_reported_once(ham, tmp_path):
    from skinkeras.data.registry import load_dataset
    from skinkeras.data.summary import format_summary, summarize

    root = _copy(ham, tmp_path)
    csv = root / "HAM10000_metadata.csv"
    pd.read_csv(csv, dtype=str).drop(columns=["age", "localization"]).to_csv(csv, index=False)
    table = load_dataset("ham10000", root)
    missing = [p for p in table.problems if p.kind == "missing_column"]
    assert sorted(p.detail.split("'")[1] for p in missing) == ["age", "localization"]
    assert {p.image_id for p in missing} == {"*"} and len(table) == 12
    assert "has no 'age' column" in format_summary(summarize(table, check_images=False))


def test_two_files_for_one_image_id_is_a_named_problem(ham, tmp_path):
    from skinkeras.data.registry import load_dataset

    root = _copy(ham, tmp_path)
    real = sorted(root.glob("HAM10000_images_part_1/*.jpg"))[0]
    _write_png(root / f"{real.stem}.png")  # a stray copy at the root
    table = load_dataset("ham10000", root)
    assert _kinds(table)["ambiguous_file"] == [real.stem]
    detail = next(p.detail for p in table.problems if p.kind == "ambiguous_file")
    assert str(real) in detail and f"{real.stem}.png" in detail
    assert real.stem not in set(table.samples["image_id"])


# ---- security -------------------------------------------------------------------------------------
def test_folder_csv_paths_must_stay_inside_the_root_unless_allowed(tmp_path):
    from skinkeras.data.registry import load_dataset
    from skinkeras.engine.run_data import load_table

    root, outside = tmp_path / "data", tmp_path / "outside"
    _write_png(root / "imgs" / "in.png")
    _write_png(outside / "x.png")
    _write_png(outside / "y.png")
    (root / "labels.csv").write_text(f"image,label\nimgs/in.png,a\n../outside/x.png,b\n{outside / 'y.png'},b\n")
    table = load_dataset("folder", root)
    assert list(table.samples["image_id"]) == ["in"]
    escapes = {p.image_id: p.detail for p in table.problems if p.kind == "missing_file"}
    assert escapes.keys() == {"x", "y"} and all("outside the data root" in d for d in escapes.values())

    assert len(load_dataset("folder", root, allow_outside_root="true")) == 3
    config = apply_overrides(ExperimentConfig(), ["data.dataset=folder", f"data.root={root}",
                                                  "data.allow_outside_root=true"])
    assert len(load_table(config)) == 3
    with pytest.raises(SkinkerasError, match="folder layout only"):
        load_table(apply_overrides(config, ["data.dataset=ham10000"]))


# ---- tracebacks and wrong errors --------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs must be a whole number >= 1"),
    ("data.image_size=0", "data.image_size must be a whole number >= 1"),
    ("data.image_size=8", "MobileNetV3Small needs data.image_size >= 32"),
    ("model.backbone=NoSuchNet", "model.backbone: Unknown backbone"),
])
def test_settings_no_training_can_run_with_are_one_line_errors(ham, tmp_path, capsys, override, message):
    from skinkeras.cli import main

    tiny = ["model.backbone=MobileNetV3Small", "model.head=gap", "data.image_size=32", "data.batch_size=4",
            "model.weights="]
    code = main(["train", "ham10000_soft_attention", "--data-root", str(ham), "--out", str(tmp_path / "run"),
                 *[arg for o in tiny + [override] for arg in ("--set", o)]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_an_empty_images_folder_is_a_one_line_error(ham, tmp_path):
    from skinkeras.engine.run_data import load_table

    root = _copy(ham, tmp_path)
    for image in root.glob("HAM10000_images_part_*/*"):
        image.unlink()
    config = apply_overrides(ExperimentConfig(), [f"data.root={root}"])
    with pytest.raises(SkinkerasError, match="no usable images in the ham10000 dataset .*missing_file"):
        load_table(config)


def test_a_comma_in_the_data_root_is_part_of_the_path(tmp_path):
    config = apply_overrides(ExperimentConfig(), [f"data.root={tmp_path}/a, b", "split.fractions=0.8,0.1,0.1"])
    assert config.data.root == f"{tmp_path}/a, b"
    assert config.split.fractions == (0.8, 0.1, 0.1)  # lists still split


# ---- images too small or too large --------------------------------------------------------------------
def test_pixel_limit_refuses_a_huge_image_before_decoding_and_tiny_ones_warn(tmp_path, monkeypatch, caplog):
    from skinkeras.data.images import check_images
    from skinkeras.errors import DataError
    from skinkeras.export.predictor import read_image

    big, tiny = tmp_path / "big.png", tmp_path / "tiny.png"
    _write_png(big, size=(300, 200))
    _write_png(tiny, size=(1, 1))
    monkeypatch.setenv("SKINKERAS_MAX_IMAGE_PIXELS", "50000")
    with pytest.raises(DataError, match=r"big.png: 300 x 200 pixels, over the limit of 50,000 .*SKINKERAS_MAX"):
        read_image(big)
    assert [p.kind for p in check_images([big])] == ["unreadable"]
    with caplog.at_level(logging.WARNING):
        assert read_image(tiny).shape == (1, 1, 3)
    assert "only 1 x 1 pixels" in caplog.text
    monkeypatch.setenv("SKINKERAS_MAX_IMAGE_PIXELS", "0")  # no limit
    assert read_image(big).shape == (200, 300, 3)


def test_the_default_pixel_limit_stops_a_20000_pixel_square_jpeg_header(tmp_path):
    from skinkeras.data.images import MAX_IMAGE_PIXELS, read_image_rgb
    from skinkeras.errors import DataError

    # A valid JPEG header declaring 20000 x 20000 (no pixel data needed: the limit comes first).
    from PIL import Image

    small = tmp_path / "small.jpg"
    Image.new("RGB", (8, 8)).save(small, quality=50)
    data = bytearray(small.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (20000).to_bytes(2, "big") + (20000).to_bytes(2, "big")
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(bytes(data))
    assert MAX_IMAGE_PIXELS < 20000 * 20000
    with pytest.raises(DataError, match="huge.jpg: 400000000 pixels, over the limit"):
        read_image_rgb(huge)


# ---- machine-readable output -------------------------------------------------------------------------
def test_train_json_is_the_only_thing_on_stdout_and_progress_is_plain_on_stderr(ham, tmp_path, capsys,
                                                                               monkeypatch):
    import skinkeras.runs
    from skinkeras.cli import main

    seen = {}

    def train_experiment(config, run_dir, *, resume=False, verbose="auto"):
        # What training writes to stdout: Keras' progress (bars with ANSI escapes on a terminal)
        # and the callbacks' notes.
        seen["verbose"] = verbose
        print("\x1b[1m1/4\x1b[0m progress" if verbose != 2 else "4/4 - 1s - loss: 0.5")
        print("Epoch 1: time budget of 1 min used; stopping")
        return {"epochs_done": 1, "best_val_auc": float("nan"), "train_seconds_total": np.float64(1.5),
                "images_left_out": ["ISIC_1"]}

    monkeypatch.setattr(skinkeras.runs, "train_experiment", train_experiment)
    run = tmp_path / "run"
    assert main(["train", "ham10000_soft_attention", "--data-root", str(ham), "--out", str(run), "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)  # all of stdout is one JSON document (NaN written as null)
    assert summary == {"epochs_done": 1, "best_val_auc": None, "train_seconds_total": 1.5,
                       "images_left_out": ["ISIC_1"], "run_dir": str(run)}
    assert seen["verbose"] == 2  # stderr is not a terminal here: one plain line per epoch
    assert "4/4 - 1s - loss: 0.5" in err and "time budget" in err and "\x1b[" not in err + out


# ---- verification on a dead model -------------------------------------------------------------------
def test_export_verification_fails_a_model_whose_outputs_ignore_the_image():
    from skinkeras.export.verify import compare_predictions, summary_line

    labels = np.array([0, 1, 2, 0, 1, 2])
    rng = np.random.default_rng(0)
    dead = np.tile([0.5, 0.3, 0.2], (6, 1)) + rng.normal(0, 8e-10, (6, 3))  # std 8e-10, as reported
    for kind in ("saved_model", "float32", "int8"):
        result = compare_predictions(kind, dead, dead.copy(), labels, ["a", "b", "c"])
        assert result["top1_agreement"] == 1.0 and result["max_abs_diff"] == 0.0  # agreement proves nothing
        assert not result["passed"] and result["output_std"] < 1e-8
        assert "do not depend on the image" in result["failures"][0]
        assert "FAILED" in summary_line(result)
    alive = np.eye(3)[labels] * 0.9 + 0.1 / 3
    assert compare_predictions("float32", alive, alive, labels, ["a", "b", "c"])["passed"]
