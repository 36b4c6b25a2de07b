"""Resumable callbacks: plateau schedule, early stopping and time budget keep and restore their state."""

import keras
import numpy as np
import pytest

from skinkeras.engine.callbacks import EarlyStop, PlateauSchedule, StepSchedule


class _Model:
    def __init__(self, lr=1e-3):
        self.optimizer = keras.optimizers.Adam(lr)
        self.stop_training = False


def _lr(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_plateau_reduces_after_patience_and_resumes_mid_wait():
    model = _Model()
    schedule = PlateauSchedule("val_loss", factor=0.2, patience=2, min_lr=1e-5)
    schedule.set_model(model)
    for epoch, value in enumerate([1.0, 0.9, 0.95, 0.97]):
        schedule.on_epoch_end(epoch, {"val_loss": value})
    assert _lr(model) == pytest.approx(2e-4)
    assert schedule.state == {"best": 0.9, "wait": 0}

    # A resumed copy continues from the stored wait count, not from zero.
    schedule.on_epoch_end(4, {"val_loss": 0.99})
    resumed = PlateauSchedule("val_loss", factor=0.2, patience=2, min_lr=1e-5, state=dict(schedule.state))
    resumed.set_model(model)
    resumed.on_epoch_end(5, {"val_loss": 0.99})
    assert _lr(model) == pytest.approx(4e-5)
    for epoch in range(6, 20):
        resumed.on_epoch_end(epoch, {"val_loss": 1.0})
    assert _lr(model) == pytest.approx(1e-5), "min_lr is a floor"


def test_early_stopping_counts_across_a_resume_and_maximises_accuracy():
    model = _Model()
    stopper = EarlyStop("val_accuracy", patience=3)
    stopper.set_model(model)
    for epoch, value in enumerate([0.5, 0.6, 0.55]):
        stopper.on_epoch_end(epoch, {"val_accuracy": value})
    assert stopper.state["best"] == 0.6 and not model.stop_training
    resumed = EarlyStop("val_accuracy", patience=3, state=dict(stopper.state))
    resumed.set_model(model)
    resumed.on_epoch_end(3, {"val_accuracy": 0.59})
    assert not model.stop_training
    resumed.on_epoch_end(4, {"val_accuracy": 0.58})
    assert model.stop_training and resumed.state["stopped_epoch"] == 5


def test_step_schedule_is_a_function_of_the_epoch():
    model = _Model()
    step = StepSchedule(1e-2, every=10, factor=0.5)
    step.set_model(model)
    lrs = []
    for epoch in (0, 9, 10, 25):
        step.on_epoch_begin(epoch)
        lrs.append(_lr(model))
    np.testing.assert_allclose(lrs, [1e-2, 1e-2, 5e-3, 2.5e-3], rtol=1e-6)
