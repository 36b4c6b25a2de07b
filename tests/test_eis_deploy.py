"""Paper 000's deployed model: `EISPredictor` (mean of a row's fold models), `skinkeras predict RUN
IMAGE --eis FILE`, and the SavedModel export. A tiny fake run (no training): config.json plus
random-weight TinyCNN / GRU fold models, and a three-lesion dataset for the export's verification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skinkeras.errors import SkinkerasError

FOLDS = 2
SETTINGS = ["eis.folds=2", "eis.crop_size=32", "eis.image_height=40", "eis.image_width=48", "eis.eval_crops=4",
            "eis.eval_permutations=3", "eis.max_measurements=4", "eis.gru_units=8", "eis.hidden_units=8",
            "eis.serx_backbone=TinyCNN", "eis.dense_backbone=TinyCNN", "eis.deploy_row=serx_gru_ca"]


def _spectra(rng, n):
    magnitude = rng.uniform(1e3, 1e5, (n, 10, 35))
    phase = rng.uniform(-1.5, 0.0, (n, 10, 35))
    return (magnitude * np.exp(1j * phase)).astype(np.complex64)


def _write_run(path: Path, data: Path, overrides=()) -> Path:
    from skinkeras.experiments.config import apply_overrides, save_config
    from skinkeras.experiments.registry import get_experiment

    config = apply_overrides(get_experiment("eis_table1_cpu").get_config(),
                             [*SETTINGS, f"data.root={data}", *overrides])
    path.mkdir(parents=True, exist_ok=True)
    save_config(config, path / "config.json")
    return path


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """{run, gru_run, data, image, npy}: fold models of serx_gru_ca (CA joint) and gru_max."""
    import cv2
    import keras

    from skinkeras.data.eis import spectra_to_features
    from skinkeras.systems.eis.model import build_gru, build_joint

    root = tmp_path_factory.mktemp("eis_deploy")
    rng = np.random.default_rng(0)
    data = root / "data"
    (data / "spectra").mkdir(parents=True)
    (data / "images").mkdir()
    lines = ["lesion_id,label,age,sex,site,image"]
    for i, n in enumerate((3, 6, 1)):  # 6 > T = 4: the first 4 are kept
        np.save(data / "spectra" / f"L{i}.npy", _spectra(rng, n))
        pixels = rng.integers(0, 256, (50 + 7 * i, 61 + 5 * i, 3), dtype=np.uint8)  # not 40 x 48: resized
        cv2.imwrite(str(data / "images" / f"L{i}.png"), pixels[..., ::-1])
        lines.append(f"L{i},{'melanoma' if i == 1 else 'benign'},50,male,back,images/L{i}.png")
    (data / "eis_metadata.csv").write_text("\n".join(lines) + "\n")
    features = spectra_to_features(_spectra(rng, 40))
    mean, variance = features.mean(0), features.var(0)
    run = _write_run(root / "run", data)
    for k in range(FOLDS):
        keras.utils.set_random_seed(k)
        joint = build_joint("ca", "TinyCNN", 32, mean, variance, units=8, hidden=8, max_measurements=4).infer
        gru = build_gru("max", mean, variance, units=8, hidden=8, max_measurements=4).infer
        for row, model in (("serx_gru_ca", joint), ("gru_max", gru)):
            cell = run / "cells" / row / f"fold_{k}"
            cell.mkdir(parents=True)
            model.save(cell / "infer.keras")
    gru_run = _write_run(root / "gru_run", data, ["eis.deploy_row=gru_max"])
    (gru_run / "cells").symlink_to(run / "cells")
    return {"run": run, "gru_run": gru_run, "data": data, "image": data / "images" / "L1.png",
            "npy": data / "spectra" / "L1.npy"}


@pytest.fixture(scope="module")
def predictor(fake):
    from skinkeras.systems.eis.predict import EISPredictor

    return EISPredictor(fake["run"])


def _by_hand(fake, shuffle_seed=None):
    """Each fold model on the lesion prepared by hand (or through predict_lesions), then averaged."""
    import cv2

    from skinkeras.data.eis import load_spectra, spectra_to_features
    from skinkeras.data.images import read_image_rgb
    from skinkeras.saving import load_model
    from skinkeras.systems.eis.data import LesionArrays, crop_offsets, predict_lesions

    image = cv2.resize(read_image_rgb(fake["image"]), (48, 40), interpolation=cv2.INTER_AREA)
    features = spectra_to_features(load_spectra(fake["npy"]))
    probs = []
    for k in range(FOLDS):
        model = load_model(fake["run"] / "cells" / "serx_gru_ca" / f"fold_{k}" / "infer.keras", compile=False)
        if shuffle_seed is not None:
            arrays = LesionArrays(ids=np.array(["x"]), labels=np.zeros(1, int), diagnosis=np.array([""]),
                                  features=features[None], counts=np.array([len(features)]), images=image[None],
                                  has_image=np.array([True]))
            probs.append(predict_lesions(model, arrays, [0], use_images=True, use_eis=True, crop_size=32,
                                         eval_crops=4, eval_permutations=3, max_measurements=4)[0])
            continue
        crops = np.stack([image[y: y + 32, x: x + 32] for y, x in crop_offsets(40, 48, 32, 4)]).astype(np.float32)
        eis = np.repeat(features[None, :4], 4, axis=0)
        mask = np.ones((4, 4), np.float32)
        out = np.asarray(model.predict_on_batch({"image": crops, "eis": eis, "eis_mask": mask}))
        probs.append(out.mean(axis=0))
    return np.mean(probs, axis=0)


def test_predictor_is_the_mean_of_the_fold_models(fake, predictor):
    from skinkeras.data.images import read_image_rgb

    pixels = read_image_rgb(fake["image"])
    fixed = predictor.predict(pixels, eis=fake["npy"], shuffle=False)
    np.testing.assert_allclose(fixed, _by_hand(fake), atol=1e-5)
    shuffled = predictor.predict(pixels, eis=fake["npy"])  # eval_permutations random orders, as evaluated
    np.testing.assert_allclose(shuffled, _by_hand(fake, shuffle_seed=0), atol=1e-5)
    assert predictor.describe()["deployed"] == "mean of the 2 fold models' probabilities"
    assert predictor.describe()["uses_images"] and predictor.describe()["uses_eis"]


def test_cli_predicts_a_lesion_from_image_and_spectra(fake, predictor, capsys):
    from skinkeras.cli import main

    assert main(["predict", str(fake["run"]), str(fake["image"]), "--eis", str(fake["npy"]), "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["eis"] == str(fake["npy"]) and set(result["probabilities"]) == {"benign", "malignant"}
    expected = predictor.predict(__import__("skinkeras.data.images", fromlist=["x"]).read_image_rgb(fake["image"]),
                                 eis=fake["npy"])
    assert result["probabilities"]["malignant"] == pytest.approx(float(expected[1]), abs=1e-5)
    # An EIS-only deployed row: --eis alone.
    assert main(["predict", str(fake["gru_run"]), "--eis", str(fake["npy"]), "--json"]) == 0
    [alone] = json.loads(capsys.readouterr().out)
    assert alone["image"] is None and sum(alone["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_missing_or_malformed_spectra_are_one_line_errors(fake, tmp_path, capsys):
    from skinkeras.cli import main

    bad_shape, not_npy = tmp_path / "shape.npy", tmp_path / "text.npy"
    np.save(bad_shape, np.zeros((2, 10, 30), np.complex64))
    not_npy.write_text("hello")
    cases = [
        ([str(fake["image"])], "needs the lesion's EIS spectra: --eis"),
        ([str(fake["image"]), "--eis", str(tmp_path / "none.npy")], "none.npy: no such file"),
        ([str(fake["image"]), "--eis", str(bad_shape)], "shape.npy: shape (2, 10, 30) is not"),
        ([str(fake["image"]), "--eis", str(not_npy)], "text.npy: not a .npy file"),
        (["--eis", str(fake["npy"])], "needs the lesion's dermoscopy image"),
        ([str(fake["image"]), str(fake["image"]), "--eis", str(fake["npy"])], "give one image with it"),
        ([str(fake["image"]), "--input", "clinical=x.jpg"], "--clinical is not an input of this eis run model"),
    ]
    for args, message in cases:
        assert main(["predict", str(fake["run"]), *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, (args, err)


def test_a_predictor_without_extra_inputs_refuses_them():
    from skinkeras.export.predictor import Predictor
    from skinkeras.export.serving import RunSpec

    predictor = Predictor(RunSpec(class_names=("a", "b"), image_size=32, metadata=None))
    predictor.kind = "run"
    with pytest.raises(SkinkerasError, match=r"--eis is not an input of this run model \(it takes images only\)"):
        predictor.predict(np.zeros((8, 8, 3), np.uint8), eis="x.npy")


def test_tflite_export_is_refused(fake):
    from skinkeras.systems.eis.export import export_eis

    with pytest.raises(SkinkerasError, match="TFLite is not supported"):
        export_eis(fake["run"], "tflite")


def test_saved_model_matches_the_predictor_with_the_given_order(fake, predictor, tmp_path):
    import tensorflow as tf

    from skinkeras.data.images import read_image_rgb
    from skinkeras.systems.eis.export import export_eis, export_inputs
    from skinkeras.systems.eis.predict import read_eis_features

    result = export_eis(fake["run"], "saved_model", out_dir=tmp_path / "export")
    verification = result["verification"]
    assert verification["passed"] and verification["n"] == 3, verification
    assert verification["max_abs_diff"] < 1e-4
    serve = tf.saved_model.load(result["path"]).signatures["serving_default"]
    pixels = read_image_rgb(fake["image"])
    features = read_eis_features(fake["npy"])  # 6 measurements: the graph keeps the first 4
    out = serve(**export_inputs(predictor, pixels, features))
    expected = predictor.predict(pixels, eis=fake["npy"], shuffle=False)
    np.testing.assert_allclose(out["probabilities"].numpy()[0], expected, atol=1e-4)
    # Padding and its mask change nothing.
    padded = np.concatenate([features[:4], np.full((3, 700), 7.0, np.float32)])[None]
    mask = np.array([[1, 1, 1, 1, 0, 0, 0]], np.float32)
    again = serve(image=tf.constant(pixels[None]), eis=tf.constant(padded), eis_mask=tf.constant(mask))
    np.testing.assert_allclose(again["probabilities"].numpy(), out["probabilities"].numpy(), atol=1e-6)
    info = json.loads((Path(result["path"]) / "export.json").read_text())
    assert info["deployed"]["row"] == "serx_gru_ca" and "one order per lesion" in info["measurement_order"]


def test_svm_row_is_the_mean_of_the_fold_svms(fake, tmp_path):
    import joblib
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from skinkeras.data.eis import spectra_to_features
    from skinkeras.systems.eis.data import one_lesion
    from skinkeras.systems.eis.predict import EISPredictor, read_eis_features
    from skinkeras.systems.eis.train import svm_lesion_probabilities

    run = _write_run(tmp_path / "svm_run", fake["data"], ["eis.deploy_row=svm"])
    rng = np.random.default_rng(1)
    svms = []
    for k in range(FOLDS):
        x = spectra_to_features(_spectra(rng, 30))
        svms.append(make_pipeline(StandardScaler(), SVC(kernel="rbf", gamma="scale")).fit(x, np.arange(30) % 2))
        (run / "cells" / "svm" / f"fold_{k}").mkdir(parents=True)
        joblib.dump(svms[-1], run / "cells" / "svm" / f"fold_{k}" / "svm.joblib")
    predictor = EISPredictor(run)
    arrays = one_lesion(None, read_eis_features(fake["npy"]))
    expected = np.mean([svm_lesion_probabilities(m, arrays, [0])[0] for m in svms])
    assert predictor.predict(eis=fake["npy"])[1] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(SkinkerasError, match="has no SavedModel form"):
        from skinkeras.systems.eis.export import export_eis

        export_eis(run, "saved_model", out_dir=tmp_path / "svm_export")
