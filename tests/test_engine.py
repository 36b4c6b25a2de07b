"""The engine's contracts on toy models and data: the fit engine with per-sample weights and with
multi-input / multi-output models, the run directory's names, the task registry, predictions
files (exact round trip), comparisons with permutation tests, and ensembles of predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinkeras.engine.run_directory import RunDirectory
from skinkeras.errors import SkinkerasError
from skinkeras.evaluation.predictions import Predictions
from skinkeras.experiments.sections import TrainConfig

CONSTANT = TrainConfig(epochs=2, lr_schedule="constant", early_stopping_patience=0, monitor="val_loss",
                       learning_rate=0.1, optimizer="sgd")


def _dense_model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    return model


def _weighted(weight: float, n: int = 32):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, n)]
    return tf.data.Dataset.from_tensor_slices((x, y, np.full(n, weight, "float32"))).batch(8)


@pytest.mark.parametrize("weight, changes", [(0.0, False), (1.0, True)])
def test_per_sample_weights_in_dataset_elements_reach_the_loss(tmp_path, weight, changes):
    from skinkeras.engine.fit import fit

    model = _dense_model()
    before = [w.copy() for w in model.get_weights()]
    result = fit(model, RunDirectory(tmp_path / "run"), train_config=CONSTANT, train_data=lambda epoch: _weighted(weight),
                 steps=None, val_data=_weighted(1.0), tensorboard=False, verbose=0)
    after = model.get_weights()
    assert result.epochs_done == 2
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)) is changes


def test_multi_input_multi_output_models_fit_and_checkpoint(tmp_path):
    import keras
    import tensorflow as tf

    from skinkeras.engine.fit import fit
    from skinkeras.saving import load_model

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 3), name="image")
    spectra = keras.Input((5, 7), name="spectra")
    joint = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(image),
                                        keras.layers.GlobalAveragePooling1D()(spectra)])
    outputs = {"image_head": keras.layers.Dense(2, activation="softmax", name="image_head")(joint),
               "spectra_head": keras.layers.Dense(2, activation="softmax", name="spectra_head")(joint)}
    model = keras.Model({"image": image, "spectra": spectra}, outputs)
    model.compile(optimizer="adam", loss={"image_head": "categorical_crossentropy",
                                          "spectra_head": "categorical_crossentropy"})
    rng = np.random.default_rng(0)
    n = 16
    x = {"image": rng.uniform(0, 1, (n, 8, 8, 3)).astype("float32"),
         "spectra": rng.normal(size=(n, 5, 7)).astype("float32")}
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, n)]
    data = tf.data.Dataset.from_tensor_slices((x, {"image_head": y, "spectra_head": y})).batch(4)
    run = RunDirectory(tmp_path / "run")
    result = fit(model, run, train_config=CONSTANT, train_data=lambda epoch: data, steps=None, val_data=data,
                 checkpoint_monitor="val_spectra_head_loss", tensorboard=False, verbose=0)
    assert result.epochs_done == 2
    state = json.loads(run.state.read_text())
    assert "val_image_head_loss" in state["checkpoint"]["history"][-1]
    assert state["checkpoint"]["best_epoch"] in (1, 2)
    reloaded = load_model(run.best_model)
    assert set(reloaded.output) == {"image_head", "spectra_head"}
    history = run.history.read_text().splitlines()
    assert history[0].startswith("epoch,") and [line.split(",")[0] for line in history[1:]] == ["1", "2"]


def test_a_nan_loss_stops_the_engine_with_a_one_line_error(tmp_path):
    import tensorflow as tf

    from skinkeras.engine.callbacks import NonFiniteLossError
    from skinkeras.engine.fit import fit

    x = np.full((8, 4), np.nan, "float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[[0] * 8])).batch(4)
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        fit(_dense_model(), RunDirectory(tmp_path / "run"), train_config=CONSTANT, train_data=data, steps=None,
            val_data=data, tensorboard=False, verbose=0)


def test_run_directory_names_every_file():
    run = RunDirectory("/runs/a")
    assert run.best_model.as_posix() == "/runs/a/best.keras"
    assert run.state.as_posix() == "/runs/a/checkpoints/state.json"
    assert run.evaluation("val", multi_crop=True).predictions.as_posix() == "/runs/a/evaluation_val_multicrop/predictions.csv"
    assert run.fold(3).path.as_posix() == "/runs/a/fold_3"
    assert run.export_dir("tflite", "int8").as_posix() == "/runs/a/export/tflite_int8"


def test_no_module_outside_the_run_directory_spells_a_run_file_name():
    """Run-file names live in skinkeras.engine.run_directory (and a task's own run_files module)."""
    import re
    from pathlib import Path

    import skinkeras

    root = Path(skinkeras.__file__).parent
    owners = {root / "engine" / "run_directory.py", root / "systems" / "two_stage" / "run_files.py"}
    pattern = re.compile(r"""["'](config\.json|split\.csv|preprocessing\.json|skipped\.json|best\.keras|last\.keras|"""
                         r"""state\.json|history\.csv|run\.json|int8_ranges\.json|folds\.csv|predictions\.csv)["']""")
    offenders = []
    for path in root.rglob("*.py"):
        if path in owners:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) and '"""' not in code:
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_registered_task_part_resolves():
    from skinkeras.tasks import ROLES, all_tasks

    names = {task.name for task in all_tasks()}
    assert {"classification", "segmentation", "two_stage"} <= names
    for task in all_tasks():
        for role in ROLES:
            if task.has(role):
                assert callable(task.function(role)), (task.name, role)
        for module in task.serializable:
            __import__(module)


def _predictions(n=60, seed=0, quality=0.8, model="m", ids=None):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    probs = rng.dirichlet([1, 1, 1], size=n)
    right = rng.random(n) < quality
    probs[right] = 0.1
    probs[right, y[right]] = 0.8
    ids = ids if ids is not None else [f"i{k:03d}" for k in range(n)]
    return Predictions.from_probabilities(ids=ids, probabilities=probs, class_names=["a", "b", "c"], y_true=y,
                                          groups=[f"g{k // 2}" for k in range(n)], model=model)


def test_predictions_files_round_trip_exactly(tmp_path):
    predictions = Predictions.concat([_predictions(model="x"), _predictions(seed=1, model="y").with_fold(2)])
    path = predictions.write(tmp_path / "predictions.csv")
    again = Predictions.read(path)
    np.testing.assert_array_equal(again.probabilities(), predictions.probabilities())  # bit for bit
    assert again.models == ["x", "y"] and again.class_names == ("a", "b", "c")
    assert again.select("y").frame["fold"].tolist() == [2] * 60
    assert again.select("x").frame["fold"].isna().all()
    np.testing.assert_array_equal(again.labels(), predictions.labels())
    with pytest.raises(SkinkerasError, match="no predictions of model 'z'"):
        again.select("z")
    with pytest.raises(SkinkerasError, match="have no prediction"):
        again.select("x").aligned_to(["i000", "nope"])


def test_compare_finds_a_real_difference_and_none_between_copies():
    from skinkeras.evaluation.compare import compare_predictions, markdown

    good, bad = _predictions(quality=0.9), _predictions(seed=1, quality=0.2)
    result = compare_predictions({"good": good, "bad": bad, "copy": good}, "balanced_accuracy",
                                 n_permutations=2000, n_resamples=500)
    p = {(pair["a"], pair["b"]): pair["p_value"] for pair in result["pairs"]}
    assert p[("good", "bad")] < 0.01 and p[("good", "copy")] == 1.0
    values = {row["model"]: row for row in result["rows"]}
    assert values["good"]["value"] > values["bad"]["value"]
    low, high = values["good"]["ci95"]
    assert low <= values["good"]["value"] <= high
    text = markdown(result)
    assert "| good |" in text and "p-values" in text


def test_compare_uses_only_the_samples_every_model_predicted():
    from skinkeras.evaluation.compare import compare_predictions

    a = _predictions()
    b = _predictions(seed=2, ids=[f"i{k:03d}" for k in range(9, 69)])  # same labels on shared ids
    result = compare_predictions({"a": a, "b": b}, "macro_auc", n_permutations=200, n_resamples=0)
    assert result["n"] == 51 and result["samples_left_out"] == 18
    with pytest.raises(SkinkerasError, match="unknown metric"):
        compare_predictions({"a": a}, "f2")
    with pytest.raises(SkinkerasError, match="two-class"):
        compare_predictions({"a": a}, "specificity_at_sensitivity")


def test_ensembles_of_predictions_files():
    from skinkeras.evaluation.ensembles import ensemble_predictions

    a, b = _predictions(model="a"), _predictions(seed=3, model="b")
    averaged = ensemble_predictions([a, b], "average")
    np.testing.assert_allclose(averaged.probabilities(), (a.probabilities() + b.probabilities()) / 2)
    maxed = ensemble_predictions([a, b], "max", model="max(a,b)")
    top = np.maximum(a.probabilities(), b.probabilities())
    np.testing.assert_allclose(maxed.probabilities(), top / top.sum(axis=1, keepdims=True))
    assert maxed.models == ["max(a,b)"]
    with pytest.raises(SkinkerasError, match="fit_on"):
        ensemble_predictions([a, b], "svc")
    fitted = ensemble_predictions([a, b], "random_forest", fit_on=[a, b])
    assert fitted.probabilities().shape == (60, 3)


def test_compare_command_reads_runs_and_files(tmp_path, capsys):
    from skinkeras.cli import main

    for name, quality in (("run_a", 0.9), ("run_b", 0.3)):
        _predictions(quality=quality, seed=len(name)).write(tmp_path / name / "evaluation_test" / "predictions.csv")
        (tmp_path / name / "config.json").write_text("{}")
    assert main(["compare", str(tmp_path / "run_a"), str(tmp_path / "run_b" / "evaluation_test" / "predictions.csv"),
                 "--permutations", "500", "--resamples", "100", "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "run_a" in out and "run_b" in out and "p-values" in out
    assert (tmp_path / "cmp" / "compare.csv").exists() and json.loads((tmp_path / "cmp" / "compare.json").read_text())["pairs"]
    assert main(["compare", str(tmp_path / "missing_run")]) == 2
