"""Callbacks whose state survives a kill: plateau LR schedule, early stopping, checkpoints.

Keras' own ReduceLROnPlateau / EarlyStopping / ModelCheckpoint reset their counters in
`on_train_begin`, so a resumed run would forget how long it had waited and what its best score was,
and end somewhere an uninterrupted run would not. These keep their state in a dict that the
`RunCheckpoint` callback writes atomically with the model after every epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from skinkeras.errors import SkinkerasError


class NonFiniteLossError(SkinkerasError):
    """Training produced a NaN or infinite loss."""


def _better(value, best, mode, min_delta):
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _mode_for(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops the run with a clear message as soon as the loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"the training loss became {float(loss)} at batch {batch + 1}: lower the learning "
                "rate (--set train.learning_rate=...), check the inputs, or use precision=float32"
            )


class StatefulCallback(keras.callbacks.Callback):
    """A callback with a JSON-able `state` dict that a resumed run restores."""

    def __init__(self, state: dict | None = None):
        super().__init__()
        self.state = dict(state or {})


class PatienceCallback(StatefulCallback):
    """Tracks the best `monitor` value and how many epochs have passed without improving on it."""

    def __init__(self, monitor, patience, min_delta, state=None):
        super().__init__(state)
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode_for(monitor)
        self.state.setdefault("best", None)
        self.state.setdefault("wait", 0)

    def _out_of_patience(self, logs) -> bool:
        """Updates best / wait with this epoch's value; True once `patience` epochs went by."""
        value = (logs or {}).get(self.monitor)
        if value is None:
            return False
        if _better(value, self.state["best"], self.mode, self.min_delta):
            self.state["best"], self.state["wait"] = float(value), 0
            return False
        self.state["wait"] += 1
        return self.state["wait"] >= self.patience


class PlateauSchedule(PatienceCallback):
    """ReduceLROnPlateau (factor, patience, min_lr) with resumable state. Paper 001: 0.2, 5, 1e-7."""

    def __init__(self, monitor="val_loss", factor=0.2, patience=5, min_lr=1e-7, min_delta=1e-4, state=None):
        super().__init__(monitor, patience, min_delta, state)
        self.factor, self.min_lr = factor, min_lr

    def on_epoch_end(self, epoch, logs=None):
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if logs is not None:
            logs["learning_rate"] = lr
        if self._out_of_patience(logs) and lr > self.min_lr:
            new_lr = max(lr * self.factor, self.min_lr)
            self.model.optimizer.learning_rate = new_lr
            self.state["wait"] = 0
            print(f"\nEpoch {epoch + 1}: {self.monitor} has not improved for {self.patience} epochs; "
                  f"learning rate {lr:.3g} -> {new_lr:.3g}")


class StepSchedule(StatefulCallback):
    """Step decay: the learning rate times `factor` every `every` epochs (a function of the epoch)."""

    def __init__(self, initial_lr, every=10, factor=0.5, min_lr=0.0):
        super().__init__()
        self.initial_lr, self.every, self.factor, self.min_lr = initial_lr, every, factor, min_lr

    def on_epoch_begin(self, epoch, logs=None):
        lr = max(self.initial_lr * self.factor ** (epoch // self.every), self.min_lr)
        self.model.optimizer.learning_rate = lr


class EarlyStop(PatienceCallback):
    """EarlyStopping on `monitor` with resumable state (the best weights live in best.keras)."""

    def __init__(self, monitor="val_loss", patience=25, min_delta=0.0, state=None):
        super().__init__(monitor, patience, min_delta, state)
        self.state.setdefault("stopped_epoch", None)

    def on_epoch_end(self, epoch, logs=None):
        if self._out_of_patience(logs):
            self.state["stopped_epoch"] = epoch + 1
            self.model.stop_training = True
            print(f"\nEpoch {epoch + 1}: early stopping, no {self.monitor} improvement for {self.patience} epochs")


class TimeBudget(StatefulCallback):
    """Stops cleanly after the epoch in which the run's total training time passes `max_minutes`."""

    def __init__(self, max_minutes: float, state=None):
        super().__init__(state)
        self.max_minutes = max_minutes
        self.state.setdefault("elapsed_seconds", 0.0)
        self.state.setdefault("stopped", False)
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.state["elapsed_seconds"] += time.monotonic() - self._start
        if self.max_minutes and self.state["elapsed_seconds"] >= self.max_minutes * 60:
            self.state["stopped"] = True
            self.model.stop_training = True
            print(f"\nEpoch {epoch + 1}: time budget of {self.max_minutes:g} min used; stopping")


def atomic_save_model(model, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.stem + ".partial.keras")
    model.save(tmp)
    os.replace(tmp, path)


def atomic_write_json(data, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


class RunCheckpoint(keras.callbacks.Callback):
    """After every epoch: best.keras when `monitor` improves, then last.keras and state.json.

    state.json is written last and names the epoch whose last.keras is complete, so a kill at any
    moment leaves either the previous epoch's pair or the new one, never a mix. Must run after the
    stateful callbacks in the callback list, so that it stores their end-of-epoch state.
    """

    def __init__(self, run_dir: Path, monitor: str, stateful: dict, state=None):
        super().__init__()
        self.dir = Path(run_dir)
        self.ckpt_dir = self.dir / "checkpoints"
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.monitor, self.mode = monitor, _mode_for(monitor)
        self.stateful = stateful
        self.state = dict(state or {})
        self.state.setdefault("best", None)
        self.state.setdefault("best_epoch", None)
        self.state.setdefault("history", [])

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        value = logs.get(self.monitor)
        if value is not None and _better(value, self.state["best"], self.mode, 0.0):
            self.state["best"], self.state["best_epoch"] = value, epoch + 1
            atomic_save_model(self.model, self.dir / "best.keras")
        atomic_save_model(self.model, self.ckpt_dir / "last.keras")
        self.state["history"].append({"epoch": epoch + 1, **logs})
        state = {
            "epochs_done": epoch + 1,
            "checkpoint": self.state,
            "callbacks": {name: cb.state for name, cb in self.stateful.items()},
        }
        atomic_write_json(state, self.ckpt_dir / "state.json")


def load_run_state(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "checkpoints" / "state.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())
