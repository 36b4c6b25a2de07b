"""A task registered from this test module alone (nothing in skinkeras edited) trains, evaluates,
predicts and exports through the command line, and the engine's contracts hold for it: its config
section takes typed --set overrides, and the run records where the task lives so later commands
find it.

The toy task: the mean colour of an image -> Dense -> softmax, with a per-sample weight in every
dataset element (0 for `toy.ignored_class`), which the fit engine hands to the loss.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skinkeras.tasks import Task, register_task

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE = "tests.test_task_plugins"


@dataclasses.dataclass
class ToyConfig:
    """The toy task's own section."""

    hidden_units: int = 0  # 0: no hidden layer
    ignored_class: str = ""  # samples of this class get weight 0


def make_dataset(config, table, *, training: bool, epoch: int = 0):
    """Elements `({"colour": float32[3]}, one-hot[C], weight)`: the image's mean RGB in 0..1."""
    import tensorflow as tf

    from skinkeras.data.pipeline import read_image

    samples = table.samples
    weights = (samples["label"] != config.toy.ignored_class).astype("float32").to_numpy()
    data = tf.data.Dataset.from_tensor_slices((samples["image_path"].to_numpy(dtype=str),
                                               samples["label_index"].to_numpy(dtype="int32"), weights))
    if training:
        data = data.shuffle(len(samples), seed=config.train.seed + epoch)

    def load(path, label, weight):
        colour = tf.reduce_mean(read_image(path), axis=[0, 1]) / 255.0
        return {"colour": colour}, tf.one_hot(label, table.num_classes), weight

    return data.map(load).batch(config.data.batch_size)


def build_model(config, num_classes, dtype=None):
    import keras

    inputs = keras.Input((3,), name="colour")
    x = inputs
    if config.toy.hidden_units:
        x = keras.layers.Dense(config.toy.hidden_units, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model({"colour": inputs}, outputs, name="toy")


def train(config, run_dir, *, resume=False, verbose="auto"):
    import keras

    from skinkeras.engine.fit import build_or_resume, fit, start_run, write_summary
    from skinkeras.engine.run_data import load_split_table, split_sizes
    from skinkeras.files import write_json
    from skinkeras.engine.runtime import make_strategy

    config, run, state = start_run(config, run_dir, resume=resume)
    table = load_split_table(config, run)
    write_json(run.preprocessing, {"class_names": list(table.class_names), "image_size": 1})
    parts = {name: table.subset(table.samples["split"] == name) for name in ("train", "val")}

    def build():
        model = build_model(config, table.num_classes)
        model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate), loss="categorical_crossentropy",
                      weighted_metrics=["accuracy"])
        return model

    model = build_or_resume(run, state, build, strategy=make_strategy(config.train.strategy))
    result = fit(model, run, train_config=config.train, state=state, steps=None,
                 train_data=lambda epoch: make_dataset(config, parts["train"], training=True, epoch=epoch),
                 val_data=make_dataset(config, parts["val"], training=False), verbose=verbose)
    return write_summary(config, run, result, monitor=config.train.monitor, split_sizes=split_sizes(table))


def _colours(paths):
    from skinkeras.data.pipeline import read_image

    return np.stack([np.asarray(read_image(str(p))).mean(axis=(0, 1)) / 255.0 for p in paths]).astype("float32")


def predict(run_dir, data_root, *, dataset=None, split="test", fold=None, **_):
    from skinkeras.engine.run_data import evaluation_table
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.evaluation.predictions import Predictions

    table = evaluation_table(run_dir, data_root, dataset, split)
    probabilities = load_run_model(run_dir).predict({"colour": _colours(table.samples["image_path"])}, verbose=0)
    return Predictions.from_probabilities(ids=table.samples["image_id"], probabilities=probabilities,
                                          class_names=table.class_names, y_true=table.samples["label"].tolist(),
                                          groups=table.samples["lesion_id"], model="toy", fold=fold)


class ToyPredictor:
    """What `skinkeras predict RUN image` needs: `class_names`, `spec`, `predict(pixels, ...)`."""

    kind = "toy run"
    keras_model = None

    def __init__(self, run_dir):
        from skinkeras.engine.run_directory import RunDirectory, load_run_model
        from skinkeras.export.serving import RunSpec

        run = RunDirectory(run_dir)
        self.spec = RunSpec(class_names=tuple(run.read_preprocessing()["class_names"]), image_size=1, metadata=None)
        self.class_names = self.spec.class_names
        self.model = load_run_model(run)

    def predict(self, pixels, age=None, sex=None, site=None):
        colour = np.asarray(pixels, np.float32).mean(axis=(0, 1))[None] / 255.0
        return np.asarray(self.model.predict_on_batch({"colour": colour})[0])


def export(run_dir, fmt="saved_model", *, out_dir=None, force=False, **_):
    """A SavedModel whose `serve` takes uint8 images of any size (the mean colour in the graph)."""
    import keras
    import tensorflow as tf

    from skinkeras.engine.run_directory import RunDirectory, load_run_model
    from skinkeras.export.serving import (
        finish_out_dir,
        prepare_out_dir,
        write_sidecar_files,
    )

    run = RunDirectory(run_dir)
    model = load_run_model(run)
    predictor = ToyPredictor(run)
    out_dir = Path(out_dir) if out_dir else run.export_dir("saved_model")
    partial = prepare_out_dir(out_dir, force=force)
    archive = keras.export.ExportArchive()
    archive.track(model)
    names = tf.constant(list(predictor.class_names))

    def serve(images):
        colour = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2]) / 255.0
        probabilities = tf.cast(model({"colour": colour}), tf.float32)
        return {"probabilities": probabilities, "top_class": tf.gather(names, tf.argmax(probabilities, -1)),
                "class_names": tf.identity(names)}

    archive.add_endpoint(name="serve", fn=serve, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    archive.write_out(str(partial), verbose=False)
    write_sidecar_files(partial, predictor.spec, {"format": "saved_model", "task": "toy"})
    path = finish_out_dir(partial, out_dir)
    return {"path": str(path), "format": "saved_model", "quantize": None, "size_bytes": 0, "verification": None,
            "model_card": None}


TOY = register_task(Task(
    name="toy", summary="mean colour -> softmax (a test's task)", config=ToyConfig,
    element='({"colour": float32[3]}, one-hot float32[C], weight float32)',
    serializable=(), build_model=build_model, make_dataset=make_dataset, train=train, predict=predict,
    score="skinkeras.systems.classification.evaluate:score", predictor=ToyPredictor, export=export,
))

EXPERIMENT = '''"""The toy task of tests/test_task_plugins.py (registered there, nowhere in skinkeras).

Command:
    skinkeras train toy_experiment.py --data-root DIR

Paper: none, a test.
"""
import tests.test_task_plugins  # registers the "toy" task  # noqa: F401
from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, TrainConfig


def get_config():
    return ExperimentConfig(name="toy", task="toy", data=DataConfig(dataset="ham10000", batch_size=8),
                            train=TrainConfig(epochs=2, learning_rate=0.05, early_stopping_patience=0,
                                              lr_schedule="constant", monitor="val_loss"))
'''


def cli(*args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    result = subprocess.run([sys.executable, "-m", "skinkeras", *map(str, args)], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def cli_here(capsys, *args):
    from skinkeras.cli import main

    capsys.readouterr()
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    from skinkeras.data.synth import synthesize

    root = tmp_path_factory.mktemp("toy_data")
    synthesize("ham10000", root, n=60, seed=1, image_size=(24, 18))
    return root


def test_a_task_from_a_test_module_trains_evaluates_predicts_and_exports_through_the_cli(toy_data, tmp_path):
    from skinkeras.evaluation.predictions import Predictions

    experiment = tmp_path / "toy_experiment.py"
    experiment.write_text(EXPERIMENT)
    run = tmp_path / "run"
    cli("train", experiment, "--data-root", toy_data, "--out", run, "--set", "toy.hidden_units=4")
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "toy" and config["task_module"] == MODULE  # later commands find the task
    assert config["toy"]["hidden_units"] == 4
    assert json.loads((run / "run.json").read_text())["epochs_done"] == 2

    out = cli("evaluate", run, "--data-root", toy_data, "--resamples", "50")
    assert "balanced accuracy" in out  # the classification scorer, reused by name
    predictions = Predictions.read(run / "evaluation_test" / "predictions.csv")
    split = (run / "split.csv").read_text().splitlines()[1:]
    assert sorted(predictions.ids) == sorted(row.split(",")[0] for row in split if row.endswith(",test"))

    image = next(toy_data.rglob("*.jpg"))
    direct = json.loads(cli("predict", run, image, "--json"))[0]
    cli("export", run)
    exported = json.loads(cli("predict", run / "export" / "saved_model", image, "--json"))[0]
    for name, p in direct["probabilities"].items():
        assert exported["probabilities"][name] == pytest.approx(p, abs=1e-5)
    listed = cli("tasks", env_extra={"SKINKERAS_TASK_MODULES": MODULE})
    assert "toy" in listed and "section toy: ToyConfig" in listed


def test_the_task_section_is_typed_and_belongs_to_the_task(toy_data):
    from skinkeras.errors import ConfigError
    from skinkeras.experiments.config import ExperimentConfig, apply_overrides

    config = apply_overrides(ExperimentConfig(), ["task=toy", "toy.hidden_units=3", f"data.root={toy_data}"])
    assert config.toy.hidden_units == 3 and config.task_module == __name__  # how pytest imported this module
    with pytest.raises(ConfigError, match="toy.hidden_units expects int"):
        apply_overrides(ExperimentConfig(), ["task=toy", "toy.hidden_units=many"])


def test_cross_validation_works_for_a_plugin_task_too(toy_data, tmp_path, capsys):
    """split.folds is the engine's: the toy task gets fold runs and out-of-fold predictions
    without a line of cross-validation code of its own."""
    from skinkeras.evaluation.predictions import Predictions

    experiment = tmp_path / "toy_experiment.py"
    experiment.write_text(EXPERIMENT)
    run = tmp_path / "cv"
    # In this process (the test above covers fresh processes): two TensorFlow start-ups less.
    cli_here(capsys, "train", experiment, "--data-root", toy_data, "--out", run, "--set", "split.folds=3",
             "--set", "train.epochs=1")
    assert sorted(p.name for p in run.glob("fold_*")) == ["fold_0", "fold_1", "fold_2"]
    out = cli_here(capsys, "evaluate", run, "--data-root", toy_data, "--resamples", "0")
    assert out.startswith("60 images")
    merged = Predictions.read(run / "evaluation_test" / "predictions.csv")
    assert len(merged) == 60 and sorted(set(merged.frame["fold"])) == [0, 1, 2]
