"""Callbacks whose state survives a kill: LR schedules (plateau, step, milestones, cosine), early stopping,
checkpoints.

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


class MilestoneSchedule(StatefulCallback):
    """The learning rate times `factor` at each milestone, a fraction of the run's `epochs`:
    epoch e (0-based) trains with initial_lr * factor^(number of milestones f with e >= f * epochs).
    Paper 003: / 10 at 50 % and 75 % of the epochs (150 epochs: from epochs 76 and 114, 1-based).
    A function of the epoch, like `StepSchedule`, so a resumed run needs no stored state."""

    def __init__(self, initial_lr, epochs, milestones=(0.5, 0.75), factor=0.1, min_lr=0.0):
        super().__init__()
        self.initial_lr, self.epochs, self.milestones = initial_lr, epochs, tuple(milestones)
        self.factor, self.min_lr = factor, min_lr

    def learning_rate(self, epoch: int) -> float:
        passed = sum(epoch >= fraction * self.epochs for fraction in self.milestones)
        return max(self.initial_lr * self.factor**passed, self.min_lr)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.learning_rate(epoch)


class CosineSchedule(StatefulCallback):
    """Linear warmup over `warmup_epochs`, then cosine decay from `initial_lr` towards `min_lr` by
    the last epoch: epoch e (0-based) of E trains with initial_lr * (e + 1) / W while e < W, then
    min_lr + (initial_lr - min_lr) * (1 + cos(pi * (e - W) / (E - W))) / 2.

    Annealed by construction: the run ends at a small learning rate whatever the validation curve
    does (the plateau schedule stopped issue 19's run at 1.5e-4, far from converged). A function of
    the epoch, so a resumed run needs no stored state."""

    def __init__(self, initial_lr, epochs, warmup_epochs=0, min_lr=0.0):
        super().__init__()
        if warmup_epochs < 0 or warmup_epochs >= max(epochs, 1):
            raise SkinkerasError(f"train.warmup_epochs must be in [0, train.epochs). "
                                 f"Received: train.warmup_epochs={warmup_epochs}, train.epochs={epochs}")
        self.initial_lr, self.epochs, self.warmup_epochs, self.min_lr = initial_lr, epochs, warmup_epochs, min_lr

    def learning_rate(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.initial_lr * (epoch + 1) / self.warmup_epochs
        progress = (epoch - self.warmup_epochs) / max(self.epochs - self.warmup_epochs, 1)
        return self.min_lr + (self.initial_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.learning_rate(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.learning_rate(epoch)


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
    """After every epoch: best.keras when `monitor` improves, then last.keras, state.json and
    history.csv.

    state.json is written after the models and names the epoch whose last.keras is complete, so a
    kill at any moment leaves either the previous epoch's pair or the new one, never a mix;
    history.csv is rewritten from state.json's history (never appended to), so a resumed run's
    history holds each epoch once. Must run after the stateful callbacks in the callback list, so
    that it stores their end-of-epoch state.

    Args:
        run: the `RunDirectory`.
        monitor: the logged value whose best epoch is kept as best.keras.
        stateful: name -> `StatefulCallback` whose states are stored.
        state: the stored checkpoint state of a resumed run.
        saved_model: the model to save (default: the model being fitted; quantization-aware
            fine-tuning fits a clone with simulated rounding and saves the plain model).
        on_best: called with the run after a new best.keras is written (extra artifacts).
    """

    def __init__(self, run, monitor: str, stateful: dict, state=None, *, saved_model=None, on_best=None):
        super().__init__()
        self.run = run
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        self.monitor, self.mode = monitor, _mode_for(monitor)
        self.stateful = stateful
        self.saved_model = saved_model
        self.on_best = on_best
        self.state = dict(state or {})
        self.state.setdefault("best", None)
        self.state.setdefault("best_epoch", None)
        self.state.setdefault("history", [])

    def _model_to_save(self):
        return self.saved_model if self.saved_model is not None else self.model

    def record_baseline(self, logs: dict) -> None:
        """Scores of the model before the first epoch, recorded as epoch 0 (and best.keras)."""
        self._record(0, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1, logs)

    def _record(self, epoch_number: int, logs) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        value = logs.get(self.monitor)
        if value is not None and _better(value, self.state["best"], self.mode, 0.0):
            self.state["best"], self.state["best_epoch"] = value, epoch_number
            atomic_save_model(self._model_to_save(), self.run.best_model)
            if self.on_best is not None:
                self.on_best(self.run)
        atomic_save_model(self._model_to_save(), self.run.last_model)
        self.state["history"].append({"epoch": epoch_number, **logs})
        state = {
            "epochs_done": epoch_number,
            "checkpoint": self.state,
            "callbacks": {name: cb.state for name, cb in self.stateful.items()},
        }
        atomic_write_json(state, self.run.state)
        write_history(self.run.history, self.state["history"])


def write_history(path: Path, rows: list[dict]) -> None:
    """history.csv from the checkpoint's history: one row per epoch ("epoch" is 1-based, as in
    run.json's best_epoch; 0 is a baseline scored before training), written atomically."""
    keys = sorted({key for row in rows for key in row} - {"epoch"})
    lines = [",".join(["epoch", *keys])]
    for row in rows:
        lines.append(",".join([str(row["epoch"]), *(_csv_number(row.get(key)) for key in keys)]))
    partial = Path(path).with_name(Path(path).name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    os.replace(partial, path)


def _csv_number(value) -> str:
    return "" if value is None else repr(float(value))


def remove_partial_files(run) -> list[Path]:
    """Deletes the `.partial` files a kill left in the run (and its checkpoints); returns them.
    Resume trusts state.json alone, so these are never complete."""
    removed = []
    for folder in (run.path, run.checkpoints):
        if folder.is_dir():
            for path in folder.glob("*.partial*"):
                if path.is_file():
                    path.unlink()
                    removed.append(path)
    return removed


def load_run_state(run) -> dict | None:
    """The stored state.json of a run (a `RunDirectory`), or None when it has none."""
    if not run.state.exists():
        return None
    return json.loads(run.state.read_text())
