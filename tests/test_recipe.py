"""Issue 19's from-scratch recipe parts: the cosine schedule with warmup, BatchNormalization frozen
for the last epochs, label smoothing from the config, and the initial-weights choice (ImageNet,
a local file, or the from-scratch fallback: no network here, SKINKERAS_OFFLINE is set)."""

from __future__ import annotations

import csv
import json
import logging
import math

import keras
import numpy as np
import pytest

from skinkeras.engine.callbacks import CosineSchedule
from skinkeras.errors import SkinkerasError


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    schedule = CosineSchedule(1e-3, epochs=10, warmup_epochs=2, min_lr=1e-6)
    rates = [schedule.learning_rate(e) for e in range(10)]
    assert rates[:3] == pytest.approx([5e-4, 1e-3, 1e-3])
    assert all(a > b for a, b in zip(rates[2:], rates[3:]))  # strictly decreasing after the warmup
    assert rates[6] == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert 1e-6 < rates[-1] < 0.05 * 1e-3  # annealed: the last epoch trains at a few % of the peak
    with pytest.raises(SkinkerasError, match="warmup_epochs"):
        CosineSchedule(1e-3, epochs=3, warmup_epochs=3)


def test_freeze_batch_norm_fixes_statistics_and_scale_but_trains_the_rest():
    from skinkeras.engine.fit import freeze_batch_norm

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8)(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.compile("adam", "categorical_crossentropy")
    features = np.random.default_rng(0).normal(2.0, 3.0, (64, 4)).astype("float32")
    targets = keras.utils.to_categorical(np.arange(64) % 2, 2)
    model.fit(features, targets, epochs=1, verbose=0)
    norm, dense = model.layers[2], model.layers[1]
    before = [v.numpy().copy() for v in (norm.moving_mean, norm.moving_variance, norm.gamma, norm.beta)]
    kernel = dense.kernel.numpy().copy()
    assert freeze_batch_norm(model) == [norm] and freeze_batch_norm(model) == []
    model.fit(features, targets, epochs=1, verbose=0)
    after = [v.numpy() for v in (norm.moving_mean, norm.moving_variance, norm.gamma, norm.beta)]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert np.abs(dense.kernel.numpy() - kernel).max() > 0


def test_label_smoothing_reaches_the_loss_and_is_checked():
    from skinkeras.experiments.sections import TrainConfig
    from skinkeras.training.objectives import classification_loss

    assert classification_loss(TrainConfig(label_smoothing=0.1), [5, 5]).label_smoothing == 0.1
    with pytest.raises(SkinkerasError, match="label_smoothing"):
        classification_loss(TrainConfig(label_smoothing=1.0), [5, 5])


def _paper_config(*overrides):
    from skinkeras.experiments import apply_overrides, get_experiment

    return apply_overrides(get_experiment("ham10000_soft_attention").get_config(), list(overrides))


def test_paper_config_without_imagenet_weights_falls_back_to_the_recipe_in_one_line(caplog):
    from skinkeras.models.pretrained import resolve_weights

    config = _paper_config("train.epochs=30")
    assert config.model.weights == "imagenet"
    with caplog.at_level(logging.WARNING, logger="skinkeras.models.pretrained"):
        resolved, choice = resolve_weights(config)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "SKINKERAS_OFFLINE" in caplog.records[0].getMessage()
    assert choice.requested == "imagenet" and choice.used == "" and "SKINKERAS_OFFLINE" in choice.reason
    assert resolved.model.weights == ""
    t = resolved.train
    assert (t.lr_schedule, t.learning_rate, t.adam_epsilon, t.monitor) == ("cosine", 3e-4, 1e-7, "val_auc")
    assert (t.epochs, t.warmup_epochs, t.freeze_bn_epochs, t.early_stopping_patience) == (30, 2, 5, 0)
    _, no_imagenet = resolve_weights(_paper_config("model.backbone=TinyCNN"))
    assert "no ImageNet weights for TinyCNN" in no_imagenet.reason


def test_local_weights_file_is_used_as_given(tmp_path):
    from skinkeras.models.backbones import build_backbone
    from skinkeras.models.classifier import ClassifierConfig, build_classifier
    from skinkeras.models.pretrained import resolve_weights

    keras.utils.set_random_seed(7)
    source = build_backbone("TinyCNN", (64, 64, 3))
    path = tmp_path / "seeded.weights.h5"
    source.save_weights(path)
    config, choice = resolve_weights(_paper_config("model.backbone=TinyCNN", f"model.weights={path}"))
    assert config.model.weights == str(path) and choice.used == str(path) and not choice.reason
    assert config.train.lr_schedule == "plateau"  # the paper's own optimisation is kept
    model = build_classifier(ClassifierConfig(backbone="TinyCNN", head="gap", num_classes=3, image_size=64,
                                              metadata=None, weights=str(path)))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert len(backbone.weights) == len(source.weights)
    for want, got in zip(source.weights, backbone.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    with pytest.raises(SkinkerasError, match="no weights file"):
        resolve_weights(_paper_config(f"model.weights={tmp_path / 'missing.weights.h5'}"))


def test_recipe_trains_with_warmup_cosine_and_frozen_batch_norm(tmp_path):
    from skinkeras.data.synth import synthesize
    from skinkeras.experiments import ExperimentConfig, apply_overrides
    from skinkeras.saving import load_model
    from skinkeras.systems.classification.train import train

    root = tmp_path / "ham"
    synthesize("ham10000", root, n=60, seed=3, image_size=(48, 36), force=True)
    config = apply_overrides(ExperimentConfig(name="tiny"), [
        "data.dataset=ham10000", "data.image_size=32", "data.batch_size=8", "model.backbone=TinyCNN",
        "model.head=gap", "model.metadata_branch=none", "train.epochs=3", "train.early_stopping_patience=0",
        "train.lr_schedule=cosine", "train.learning_rate=1e-3", "train.min_learning_rate=0",
        "train.warmup_epochs=1", "train.freeze_bn_epochs=1", f"data.root={root}"])
    summary = train(config, tmp_path / "run", verbose=0)
    with open(tmp_path / "run" / "history.csv") as handle:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(handle)]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4])
    last = load_model(tmp_path / "run" / "checkpoints" / "last.keras")
    norms = [layer for layer in last._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.trainable for layer in norms)  # thawed for the checkpoint (see below)
    assert summary["backbone_weights"] == {"requested": "", "used": "", "reason": ""}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["epochs_done"] == 3


def test_freeze_bn_epochs_must_leave_batch_norm_some_training():
    from skinkeras.engine.fit import check_training_config
    from skinkeras.experiments import ExperimentConfig, apply_overrides

    with pytest.raises(SkinkerasError, match="freeze_bn_epochs"):
        check_training_config(apply_overrides(ExperimentConfig(name="t"), ["train.epochs=3", "train.freeze_bn_epochs=3"]))


class Killed(BaseException):
    """Stands for kill -9."""


def _toy_session(run_dir, resume: bool, name: str, train, layers):
    """One in-process `skinkeras train` session of a toy Dense model (`layers`: the hidden layers,
    applied in order) on fixed random numbers, with the engine's start_run / build_or_resume / fit."""
    import tensorflow as tf

    from skinkeras.engine.fit import build_or_resume, fit, start_run
    from skinkeras.experiments import ExperimentConfig
    from skinkeras.training.objectives import optimizer

    config = ExperimentConfig(name=name)
    config.train = train

    def build():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,), name="x")
        x = inputs
        for layer in layers():
            x = layer(x)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
        model.compile(optimizer=optimizer(train), loss="categorical_crossentropy")
        return model

    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices((rng.normal(1.0, 2.0, (32, 4)).astype("float32"),
                                               np.eye(3, dtype="float32")[rng.integers(0, 3, 32)])).batch(8)
    config, run, state = start_run(None if resume else config, run_dir, resume=resume)
    model = build_or_resume(run, state, build, strategy=tf.distribute.get_strategy())
    fit(model, run, train_config=config.train, train_data=data, steps=None, state=state, val_data=data,
        tensorboard=False, verbose=0)
    return model


def _bn_session(run_dir, resume: bool):
    from skinkeras.experiments.sections import TrainConfig

    train = TrainConfig(epochs=4, lr_schedule="cosine", warmup_epochs=1, freeze_bn_epochs=2, early_stopping_patience=0,
                        monitor="val_loss", learning_rate=0.01, adam_epsilon=1e-7)
    return _toy_session(run_dir, resume, "frozen_bn_resume", train,
                        lambda: [keras.layers.Dense(6, name="dense"), keras.layers.BatchNormalization(name="norm")])


def _kill_after_epoch(epoch: int, session, run_dir, monkeypatch) -> None:
    """Runs `session(run_dir, resume=False)` and kills it (kill -9) just after epoch `epoch`'s
    checkpoint and history row are written."""
    from skinkeras.engine import callbacks as cb

    real_history = cb.write_history

    def history_then_kill(path, rows):
        real_history(path, rows)
        if len(rows) == epoch:
            raise Killed

    monkeypatch.setattr(cb, "write_history", history_then_kill)
    with pytest.raises(Killed):
        session(run_dir, resume=False)
    monkeypatch.setattr(cb, "write_history", real_history)


def test_run_killed_in_the_frozen_phase_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Kill after epoch 3 (the first frozen epoch) is checkpointed; the resumed run must restore
    Adam's moments too (a checkpoint saved with frozen layers lost them: Keras skipped the
    optimizer's variables) and end with the uninterrupted run's weights."""
    import warnings

    straight = _bn_session(tmp_path / "straight", resume=False).get_weights()
    _kill_after_epoch(3, _bn_session, tmp_path / "killed", monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Skipping variable loading for optimizer ..."
        resumed = _bn_session(tmp_path / "killed", resume=True).get_weights()
    for want, got in zip(straight, resumed):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_make_train_ham10000_picks_the_recipe_by_device(monkeypatch):
    import importlib.util
    from pathlib import Path

    import tensorflow as tf

    from skinkeras.experiments import get_experiment

    path = Path(__file__).resolve().parents[1] / "apps" / "train_ham10000.py"
    spec = importlib.util.spec_from_file_location("train_ham10000_app", path)
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert app.default_experiment() == "ham10000_from_scratch_cpu"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert app.default_experiment() == "ham10000_soft_attention"
    cpu = get_experiment("ham10000_from_scratch_cpu").get_config()
    assert cpu.model.weights == "" and cpu.train.lr_schedule == "cosine" and cpu.train.freeze_bn_epochs > 0
    assert get_experiment("ham10000_soft_attention").get_config().model.weights == "imagenet"


def _ema_session(run_dir, resume: bool):
    from skinkeras.experiments.sections import TrainConfig

    train = TrainConfig(epochs=4, lr_schedule="constant", early_stopping_patience=0, monitor="val_loss",
                        learning_rate=0.05, adam_epsilon=1e-7, ema_momentum=0.9)
    return _toy_session(run_dir, resume, "ema_resume", train, lambda: [])


def test_ema_checkpoints_hold_the_average_and_a_killed_run_resumes_to_it(tmp_path, monkeypatch):
    """The weights a run ends with (and saves) are the moving average of the raw weights, which
    keep training underneath: computed by hand from each step's raw weights, and equal after a
    kill + --resume."""
    from skinkeras.saving import load_model

    raw_steps = []

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raw_steps.append([v.numpy().copy() for v in self.model.trainable_variables])

    import skinkeras.engine.fit as engine

    real_fit = engine.fit
    monkeypatch.setattr(engine, "fit", lambda *a, **k: real_fit(*a, extra_callbacks=[Recorder()], **k))
    model = _ema_session(tmp_path / "straight", resume=False)
    monkeypatch.setattr(engine, "fit", real_fit)
    assert len(raw_steps) == 16
    # Keras' average starts from the first step's weights, then mixes in each step's with 1 - 0.9.
    expected = [w.astype("float64") for w in raw_steps[0]]
    for step in raw_steps[1:]:
        expected = [0.9 * e + 0.1 * w for e, w in zip(expected, step)]
    for got, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(model.trainable_variables[0].numpy(), raw_steps[-1][0])  # not the raw weights
    saved = load_model(tmp_path / "straight" / "checkpoints" / "last.keras")
    for got, want in zip(saved.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)

    _kill_after_epoch(2, _ema_session, tmp_path / "killed", monkeypatch)
    resumed = _ema_session(tmp_path / "killed", resume=True)
    for got, want in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
