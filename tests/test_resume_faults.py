"""Kills at the worst moments of an epoch's checkpoint, then `--resume` (issue 18, item 7d): the
history holds each epoch once, no partial file is left, and the training time counts each epoch
once (it also feeds `train.max_minutes`). A Dense model on random numbers, in process."""

from __future__ import annotations

import time

import numpy as np
import pytest

from skinkeras.experiments import ExperimentConfig
from skinkeras.experiments.sections import TrainConfig

EPOCHS = 4


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs (no `except Exception` catches it)."""


def _config():
    config = ExperimentConfig(name="resume_faults")
    config.train = TrainConfig(epochs=EPOCHS, lr_schedule="constant", early_stopping_patience=0,
                               monitor="val_loss", learning_rate=0.1, optimizer="sgd")
    return config


def _data():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 32)]
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


class FakeClock:
    """`time` for the callbacks module: monotonic() advances 1 s per call (one epoch: 1 s)."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1.0
        return self.now


def _session(run_dir, resume: bool):
    """One `skinkeras train` session of the tiny model; returns (FitResult, wall seconds)."""
    import keras
    import tensorflow as tf

    from skinkeras.engine.fit import build_or_resume, fit, start_run

    def build():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,), name="x")
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
        return model

    started = time.monotonic()
    config, run, state = start_run(None if resume else _config(), run_dir, resume=resume)
    model = build_or_resume(run, state, build, strategy=tf.distribute.get_strategy())
    try:
        result = fit(model, run, train_config=config.train, train_data=_data(), steps=None, state=state,
                     val_data=_data(), tensorboard=False, verbose=0)
    finally:
        wall = time.monotonic() - started
    return config, run, result, wall


def test_kills_around_the_checkpoint_leave_one_history_row_per_epoch_and_honest_time(tmp_path, monkeypatch):
    from skinkeras.engine import callbacks as cb
    from skinkeras.engine.fit import start_run, write_summary

    run_dir = tmp_path / "run"
    real_history, real_save = cb.write_history, cb.atomic_save_model
    clock = FakeClock()
    monkeypatch.setattr(cb, "time", clock)  # each epoch lasts exactly 1 s for the time budget

    def history_then_kill(path, rows):  # kill -9 just after epoch 2's history row is written
        real_history(path, rows)
        if rows[-1]["epoch"] == 2:
            raise Killed

    monkeypatch.setattr(cb, "write_history", history_then_kill)
    with pytest.raises(Killed):
        _session(run_dir, resume=False)
    monkeypatch.setattr(cb, "write_history", real_history)

    def killed_mid_save(model, path):  # kill -9 while epoch 3's model is being written
        path.with_name(path.stem + ".partial.keras").write_bytes(b"")
        raise Killed

    monkeypatch.setattr(cb, "atomic_save_model", killed_mid_save)
    with pytest.raises(Killed):
        _session(run_dir, resume=True)
    monkeypatch.setattr(cb, "atomic_save_model", real_save)
    assert list(run_dir.rglob("*.partial*")), "the kill should have left a partial file"
    _, _, state = start_run(None, run_dir, resume=True)
    assert not list(run_dir.rglob("*.partial*")), "resume must drop what the checkpoint does not name"
    assert state["epochs_done"] == 2

    config, run, result, wall = _session(run_dir, resume=True)
    history = run.history.read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3", "4"]
    assert [row["epoch"] for row in cb.load_run_state(run)["checkpoint"]["history"]] == [1, 2, 3, 4]
    assert not list(run_dir.rglob("*.partial*"))
    assert real_save is cb.atomic_save_model

    summary = write_summary(config, run, result, monitor="val_loss")
    assert summary["epochs_done"] == EPOCHS
    # Each recorded epoch's second counted once (the killed epoch 3 of the second session is not
    # recorded, so not counted); counting the killed attempt again gave 94 s for 48.5 s.
    assert summary["train_seconds_total"] == pytest.approx(EPOCHS)
    assert summary["train_seconds_this_session"] <= wall + 0.1
