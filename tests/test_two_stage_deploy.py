"""Paper 002's system on images it has never seen: the in-graph lesion crop against the Python crop
(oracles: scipy's labelling, OpenCV's resizing), and a tiny trained two-stage run evaluated on an
external folder laid out as released (ISIC-2017_Test_v2_*), predicted, and exported as ONE
SavedModel (segmentation and crop inside) that agrees with the Python pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from skinkeras.experiments import ExperimentConfig, apply_overrides


@pytest.mark.parametrize("seed", range(6))
def test_largest_component_matches_scipy(seed):
    import tensorflow as tf

    from skinkeras.segmentation.crop import largest_component as scipy_largest
    from skinkeras.systems.two_stage.graph_crop import largest_component

    rng = np.random.default_rng(seed)
    shape = [(17, 23), (40, 31), (9, 9), (64, 48), (5, 30), (33, 33)][seed]
    mask = rng.random(shape) < [0.3, 0.5, 0.45, 0.2, 0.6, 0.0][seed]
    if seed == 2:  # two components of the same size: the first in raster order wins, as in scipy
        mask = np.zeros(shape, bool)
        mask[0:2, 6:8] = mask[6:8, 0:2] = True
    got = largest_component(tf.constant(mask)).numpy()
    np.testing.assert_array_equal(got, scipy_largest(mask))


@pytest.mark.parametrize("size", [(50, 70), (20, 12), (33, 33), (136, 60), (45, 157)])
def test_lesion_box_and_resize_match_the_python_crop(size):
    import cv2
    import tensorflow as tf

    from skinkeras.segmentation.crop import lesion_box as python_box
    from skinkeras.systems.two_stage.graph_crop import lesion_box, resize_like_opencv

    rng = np.random.default_rng(size[0])
    mask = np.zeros(size, bool)
    mask[size[0] // 4: size[0] // 2 + 3, size[1] // 5: size[1] - 2] = True
    mask[0, 0] = True  # a speck: not the largest component
    box, found = lesion_box(tf.constant(mask), 0.1)
    assert bool(found) and tuple(box.numpy()) == python_box(mask, 0.1)
    empty_box, empty_found = lesion_box(tf.zeros(size, tf.bool), 0.1)
    assert not bool(empty_found) and tuple(empty_box.numpy()) == (0, 0, *size)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    for target in (32, 96):  # both sides shrink (area), neither (bilinear), one of them (OpenCV's area variant)
        shrinking = size[0] > target or size[1] > target
        expected = cv2.resize(image, (target, target), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        got = resize_like_opencv(tf.constant(image), target).numpy()
        assert np.abs(got - expected.astype(np.float32)).max() <= 1.0  # OpenCV's fixed-point rounding


TINY = ["task=two_stage", "data.dataset=isic2017", "data.image_size=32", "data.batch_size=8",
        "data.use_metadata=false", "model.metadata_branch=none", "train.epochs=1", "train.early_stopping_patience=0",
        "two_stage.backbones=MobileNetV3Small,TinyCNN", "two_stage.hidden_units=8", "two_stage.lc_epochs=30",
        "two_stage.variants=segmented",
        # BatchNorm statistics from the last batches: after a few steps the default 0.9 leaves them
        # near their initial values and the members' outputs barely depend on the image.
        "model.bn_momentum=0.01"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A tiny two-stage run (its own U-Net, two members on the lesion crops) and an external
    ISIC 2017 folder in the released layout made of its held-out test images."""
    from skinkeras.data.synth import synthesize
    from skinkeras.runs import train_experiment

    base = tmp_path_factory.mktemp("deploy")
    root = base / "isic"
    synthesize("isic2017", root, n=56, seed=11, image_size=(44, 40), fractions={"train": 0.75, "val": 0.25})
    segmenter = base / "unet"
    train_experiment(apply_overrides(ExperimentConfig(name="tiny_unet"), [
        "task=segmentation", "data.dataset=isic2017", f"data.root={root}", "data.image_size=32",
        "data.batch_size=8", "data.use_metadata=false", "segmentation.base_filters=4", "train.epochs=2",
        "train.learning_rate=0.01", "train.adam_epsilon=1e-7", "train.early_stopping_patience=0"]), segmenter,
        verbose=0)
    run = base / "two_stage"
    train_experiment(apply_overrides(ExperimentConfig(name="tiny_two_stage"),
                                     TINY + [f"data.root={root}", f"two_stage.segmenter_run={segmenter}"]), run,
                     verbose=0)
    # The held-out test images as an external release: Test_v2 names, no metadata file, no masks.
    split = {line.split(",")[0]: line.split(",")[3] for line in (run / "split.csv").read_text().splitlines()[1:]}
    other = base / "isic_test_v2"
    (other / "ISIC-2017_Test_v2_Data").mkdir(parents=True)
    truth = ["image_id,melanoma,seborrheic_keratosis"]
    for line in (root / "ISIC-2017_Training_Part3_GroundTruth.csv").read_text().splitlines()[1:]:
        if split.get(line.split(",")[0]) == "test":
            truth.append(line)
            image = line.split(",")[0] + ".jpg"
            shutil.copy(root / "ISIC-2017_Training_Data" / image, other / "ISIC-2017_Test_v2_Data" / image)
    (other / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").write_text("\n".join(truth) + "\n")
    return root, run, other, len(truth) - 1


def test_the_run_keeps_its_segmenter_and_deployed_ensemble(deployed):
    _, run, _, _ = deployed
    assert (run / "segmenter" / "best.keras").exists()
    assert (run / "ensembles" / "segmented" / "lc_head.keras").exists()
    assert json.loads((run / "run.json").read_text())["deployed"] == {
        "variant": "segmented", "backbones": ["MobileNetV3Small", "TinyCNN"], "ensemble": "lc_head"}


def test_evaluated_on_a_release_it_has_never_seen(deployed):
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.runs import evaluate_run

    _, run, other, n = deployed
    metrics, files = evaluate_run(run, other, split="all", n_resamples=0)
    assert metrics["n"] == n > 0 and metrics["split"] == "all"
    assert any("never seen in training" in note for note in metrics["notes"])
    predictions = Predictions.read(files["predictions"])
    assert len(predictions.models) == 2 + 8 and len(predictions) == 10 * n
    np.testing.assert_allclose(predictions.probabilities().sum(axis=1), 1.0, atol=1e-5)


def test_predicted_and_exported_as_one_saved_model_that_agrees_with_the_pipeline(deployed, tmp_path, monkeypatch,
                                                                                   capsys):
    import tensorflow as tf

    from skinkeras.data.pipeline import read_image
    from skinkeras.runs import evaluate_run, export_run, load_predictor

    root, run, other, _ = deployed
    image_path = next((other / "ISIC-2017_Test_v2_Data").glob("*.jpg"))
    pixels = read_image(str(image_path), dtype="uint8").numpy()
    predictor = load_predictor(run)
    python = predictor.predict(pixels)
    assert python.shape == (3,) and abs(float(python.sum()) - 1) < 1e-5

    evaluate_run(run, root, n_resamples=0)  # the card reports the deployed system's test row
    result = export_run(run, "saved_model", out_dir=tmp_path / "export", data_root=root)
    verification = result["verification"]
    assert verification["passed"] and verification["n"] > 0, verification
    assert verification["max_abs_diff"] < 1e-2
    assert verification["output_std"] > 1e-4  # the models' outputs depend on the image: a real check
    card = Path(result["model_card"]).read_text()
    assert "Verification against the Python pipeline" in card and "| max_abs_diff |" in card
    assert "segmented/lc_head (this export)" in card and "Quantised" not in card
    serve = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    out = serve(images=tf.constant(pixels[None]))
    np.testing.assert_allclose(out["probabilities"].numpy()[0], python, atol=1e-2)
    bigger = tf.image.resize(pixels, (90, 70)).numpy().round().astype(np.uint8)
    assert serve(images=tf.constant(bigger[None]))["probabilities"].shape == (1, 3)  # any size
    assert set(out) >= {"probabilities", "top_class", "class_names", "lesion_box", "lesion_found"}
    # The export measured on the external release from its own files (`skinkeras evaluate EXPORT`).
    metrics, files = evaluate_run(tmp_path / "export", other, out_dir=tmp_path / "export_eval", n_resamples=0)
    assert metrics["export"]["kind"] == "two_stage saved_model"
    assert metrics["n"] == len(list((other / "ISIC-2017_Test_v2_Data").glob("*.jpg")))
    assert "(two_stage saved_model export)" in Path(files["report"]).read_text()

    # --force verifies before it replaces: a re-export that fails verification spares the good one.
    import skinkeras.systems.two_stage.export as two_stage_export

    before = (tmp_path / "export" / "saved_model.pb").read_bytes()
    real = two_stage_export.verify_against_pipeline

    def failing(path, *args, **kwargs):
        assert Path(path).name == "export.partial"  # verified before the swap, not after
        return dict(real(path, *args, **kwargs), passed=False, failures=["made to fail"])

    monkeypatch.setattr(two_stage_export, "verify_against_pipeline", failing)
    from skinkeras.cli import main

    # Through the command line, whose int8 flags a two-stage export must not be handed.
    assert main(["export", str(run), "--out", str(tmp_path / "export"), "--force", "--data-root", str(root),
                 "--limit", "2"]) == 1
    assert "SavedModel: " + str(tmp_path / "export.failed") in capsys.readouterr().out
    assert (tmp_path / "export" / "saved_model.pb").read_bytes() == before
    assert json.loads((tmp_path / "export" / "verification.json").read_text())["passed"]
    assert not json.loads((tmp_path / "export.failed" / "verification.json").read_text())["passed"]


def test_a_partial_label_set_and_a_csv_of_images(deployed, tmp_path):
    """An external set with 2 of the 3 classes is scored over them; `predict --csv` runs the
    deployed system row by row (segment, crop, members, ensemble), a missing file only failing its row."""
    import csv

    from skinkeras.cli import main
    from skinkeras.export.predictor import read_image
    from skinkeras.runs import evaluate_run, load_predictor

    _, run, other, _ = deployed
    truth = (other / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").read_text().splitlines()[1:]
    rows = [(line.split(",")[0] + ".jpg", "melanoma" if line.split(",")[1].startswith("1") else
             "seborrheic_keratosis" if line.split(",")[2].startswith("1") else "nevus") for line in truth]
    rows = [row for row in rows if row[1] != "melanoma"]
    (tmp_path / "labels.csv").write_text("image,label\n" + "".join(f"{i},{label}\n" for i, label in rows))
    for image, _ in rows:
        shutil.copy(other / "ISIC-2017_Test_v2_Data" / image, tmp_path / image)
    metrics, _ = evaluate_run(run, tmp_path, dataset="folder", split="all", out_dir=tmp_path / "eval",
                              n_resamples=0)
    assert metrics["n"] == len(rows)
    assert all(detail["absent_classes"] == ["melanoma"] for detail in metrics["details"].values())

    (tmp_path / "in.csv").write_text(f"image\n{rows[0][0]}\nmissing.jpg\n")
    assert main(["predict", str(run), "--csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv")]) == 1
    with open(tmp_path / "out.csv", newline="") as handle:
        got = list(csv.DictReader(handle))
    assert [r["image"] for r in got] == [rows[0][0], "missing.jpg"] and "missing.jpg" in got[1]["error"]
    predictor = load_predictor(run)
    want = predictor.predict(read_image(tmp_path / rows[0][0]))  # what `predict IMAGE` does
    probs = [float(got[0][f"prob_{name}"]) for name in predictor.class_names]
    np.testing.assert_allclose(probs, want, atol=1e-4)
