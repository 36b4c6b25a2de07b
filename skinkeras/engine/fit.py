"""The fit engine: the one epoch loop every task's trainer feeds.

`start_run` opens a run for training (refusing to overwrite one, or reloading a killed one's
config and state for `--resume`); `fit` trains a compiled model epoch by epoch into it:

- each epoch is one `model.fit` call on that epoch's dataset (`train_data(epoch)`: order and
  augmentation a function of (seed, epoch) alone), with the random layers reseeded from
  (seed, epoch), so a killed run resumed with `--resume` ends where an uninterrupted run would;
- the schedule (plateau / step / milestones / cosine / constant), early stopping and the time budget keep their state
  through a kill (`skinkeras.engine.callbacks`); the checkpoint after every epoch writes
  best.keras, last.keras, state.json and history.csv;
- `train.freeze_bn_epochs`: the last epochs train with BatchNormalization frozen;
- `train.ema_momentum`: validation and checkpoints use the moving average of the weights;
- a NaN or infinite loss stops the run with a one-line error; Keras prints the progress;
- dataset elements are whatever the task's model takes: `(inputs, targets)` or
  `(inputs, targets, sample_weights)`, with dict inputs / outputs for multi-input and
  multi-output models; per-sample weights reach the loss untouched.

Validation is the model's own (`val_data`), or a `validate()` function for models validated on
something else than what is fitted (quantization-aware fine-tuning fits a clone with simulated
rounding and validates the plain model, which is also what is saved: `saved_model`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import keras

from skinkeras.engine.run_directory import RunDirectory, as_run
from skinkeras.errors import SkinkerasError
from skinkeras.files import write_json

log = logging.getLogger(__name__)


def start_run(config, run_dir, *, resume, holds_run: Callable[[RunDirectory], bool] | None = None):
    """Opens `run_dir` for training. Returns `(config, run, state)`.

    A new run: refuses a directory that already holds one (`holds_run`, default: it has an epoch
    checkpoint), writes config.json and seeds every random generator from `config.train.seed`.
    `resume=True`: the stored config wins and `state` is the stored checkpoint state (None when the
    task keeps no epoch state, e.g. a composite run); leftovers of a killed write are removed.
    `resume="auto"`: resume when the directory holds a run, else start one (cross-validation folds).
    A worker other than the chief of a multi-worker run gets a scratch copy as its `run`
    (`runtime.worker_run`): only the chief writes the run directory.
    """
    from skinkeras.engine import callbacks as cb
    from skinkeras.engine.runtime import worker_run
    from skinkeras.experiments.config import save_config

    check_training_config(config)
    run = as_run(run_dir)
    holds_run = holds_run or RunDirectory.is_started
    if resume == "auto":
        resume = holds_run(run)
    if resume and not holds_run(run):
        raise SkinkerasError(f"nothing to resume in {run.path}: it holds no started run")
    if not resume and holds_run(run):
        raise SkinkerasError(f"{run.path} already holds a run: continue it with --resume or choose another --out")
    run = worker_run(run, (run.read_config() if resume else config).train.strategy, resume=resume)
    state = None
    if resume:
        config = run.read_config()
        state = cb.load_run_state(run)
        removed = cb.remove_partial_files(run)
        if removed:
            log.info("removed %d partial files left by the interrupted run", len(removed))
    run.path.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config)
    keras.utils.set_random_seed(config.train.seed)
    return config, run, state


def check_training_config(config) -> None:
    """One-line errors for settings no training can run with (`--set train.epochs=0` used to exit 0
    with no model, `data.image_size=0` to end in a traceback). None for a resumed run's stored
    config (checked when it started)."""
    if config is None:
        return
    for key, value in (("train.epochs", config.train.epochs), ("data.image_size", config.data.image_size),
                       ("data.batch_size", config.data.batch_size)):
        if not isinstance(value, int) or value < 1:
            raise SkinkerasError(f"{key} must be a whole number >= 1. Received: {key}={value!r}")
    frozen = getattr(config.train, "freeze_bn_epochs", 0)
    if not isinstance(frozen, int) or not 0 <= frozen < config.train.epochs:
        raise SkinkerasError(f"train.freeze_bn_epochs must be a whole number in [0, train.epochs). "
                             f"Received: train.freeze_bn_epochs={frozen!r}, train.epochs={config.train.epochs}")
    if config.task == "classification":
        from skinkeras.models.backbones import get_backbone_spec

        try:
            spec = get_backbone_spec(config.model.backbone)
        except ValueError as error:
            raise SkinkerasError(f"model.backbone: {error}") from None
        if config.data.image_size < spec.min_size:
            raise SkinkerasError(f"{config.model.backbone} needs data.image_size >= {spec.min_size}. "
                                 f"Received: data.image_size={config.data.image_size}")


def build_or_resume(run: RunDirectory, state, build: Callable, *, strategy):
    """The model to train: `build()` (compiled) for a new run, else the run's last checkpoint, in
    the strategy's scope; with batch normalization over the global batch on several replicas."""
    from skinkeras.engine.runtime import synchronize_batch_norm

    with strategy.scope():
        if state is not None:
            from skinkeras.saving import load_model

            model = load_model(run.last_model)
        else:
            model = build()
    synchronize_batch_norm(model, strategy)
    return model


@dataclasses.dataclass
class FitResult:
    """What a `fit` call did: epochs done in all, seconds and images of this session."""

    epochs_done: int
    seconds: float
    images_seen: int
    stopped_early: bool


def run_callbacks(train_config, run: RunDirectory, state: dict | None, *, monitor: str,
                  checkpoint_monitor: str | None = None, tensorboard: bool = True, saved_model=None,
                  on_best=None):
    """The callbacks of a run, their states restored from `state`.

    Returns `(stateful, checkpoint, callbacks)`: `stateful` are the callbacks whose state survives
    a kill (time budget, LR schedule, early stopping), `callbacks` the full list for `fit`, ending
    with the `RunCheckpoint` that saves the model and those states after every epoch.
    """
    from skinkeras.engine import callbacks as cb

    t = train_config
    saved = (state or {}).get("callbacks", {})
    stateful = {"time": cb.TimeBudget(t.max_minutes, state=saved.get("time"))}
    if t.lr_schedule == "plateau":
        stateful["schedule"] = cb.PlateauSchedule(monitor, t.plateau_factor, t.plateau_patience,
                                                  t.min_learning_rate, state=saved.get("schedule"))
    elif t.lr_schedule == "step":
        stateful["schedule"] = cb.StepSchedule(t.learning_rate, t.step_every, t.step_factor, t.min_learning_rate)
    elif t.lr_schedule == "milestones":
        milestones = tuple(getattr(t, "lr_milestones", (0.5, 0.75)))
        if not all(0 < f < 1 for f in milestones) or list(milestones) != sorted(milestones):
            raise SkinkerasError(f"train.lr_milestones must be increasing fractions in (0, 1). "
                                 f"Received: train.lr_milestones={milestones}")
        stateful["schedule"] = cb.MilestoneSchedule(t.learning_rate, t.epochs, milestones,
                                                    getattr(t, "milestone_factor", 0.1), t.min_learning_rate)
    elif t.lr_schedule == "cosine":
        stateful["schedule"] = cb.CosineSchedule(t.learning_rate, t.epochs, getattr(t, "warmup_epochs", 0),
                                                 t.min_learning_rate)
    elif t.lr_schedule != "constant":
        raise SkinkerasError(f"train.lr_schedule must be plateau, step, milestones, cosine or constant. "
                             f"Received: {t.lr_schedule!r}")
    if t.early_stopping_patience:
        stateful["early_stopping"] = cb.EarlyStop(monitor, t.early_stopping_patience,
                                                  state=saved.get("early_stopping"))
    checkpoint = cb.RunCheckpoint(run, checkpoint_monitor or monitor, stateful,
                                  state=(state or {}).get("checkpoint"), saved_model=saved_model, on_best=on_best)
    callbacks = [cb.StopOnNonFiniteLoss(), *stateful.values()]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run.logs), write_graph=False, profile_batch=0))
    callbacks.append(checkpoint)  # last: stores the end-of-epoch state of the callbacks above
    return stateful, checkpoint, callbacks


def fit(model, run, *, train_config, train_data, steps: int | None, state: dict | None = None,
        val_data=None, val_steps: int | None = None, validate: Callable[[], dict] | None = None,
        monitor: str | None = None, checkpoint_monitor: str | None = None, baseline: bool = False,
        images_per_epoch: int = 0, tensorboard: bool = True, reseed: bool = True, saved_model=None,
        on_best=None, extra_callbacks=(), verbose="auto") -> FitResult:
    """Trains `model` (compiled) for `train_config.epochs` epochs into `run` (see the module docstring).

    Args:
        train_data: `epoch -> tf.data.Dataset` (one pass, or repeated when `steps` is set by
            `train.steps_per_epoch`), or one dataset reused every epoch.
        steps: batches per epoch (None: a whole pass over the dataset).
        state: the stored state of a resumed run (None for a new one).
        val_data, val_steps: validation dataset for Keras; or `validate() -> {"val_...": value}`.
        monitor: what the schedule and early stopping watch (default `train.monitor`);
            `checkpoint_monitor` what best.keras keeps (default `monitor`).
        baseline: score the model once before training and record it as epoch 0 (a fine-tuning
            that may not improve on its source).
        images_per_epoch: for the throughput figure in run.json.
        reseed: set the random layers' seeds from (seed, epoch) every epoch (resumable dropout).
        saved_model, on_best: see `RunCheckpoint`.
        extra_callbacks: Keras callbacks of the task run first every epoch (e.g. the epoch of a
            curriculum loss: `skinkeras.training.selection.SelectionSchedule`); their state must
            be a function of the epoch, as only the run's own callbacks are checkpointed.
    """
    from skinkeras.engine.runtime import chief_decides, shard_by_data

    t = train_config
    run = as_run(run)
    strategy = model.distribute_strategy
    monitor = monitor or t.monitor
    stateful, checkpoint, callbacks = run_callbacks(
        t, run, state, monitor=monitor, checkpoint_monitor=checkpoint_monitor, tensorboard=tensorboard,
        saved_model=saved_model, on_best=on_best)
    callbacks[:0] = list(extra_callbacks)
    if uses_ema(model):
        # A checkpoint always holds the averaged weights in the model (and the raw ones in the
        # optimizer), so a resumed run starts with them swapped in.
        callbacks.insert(len(callbacks) - 1, ResumableSwapEMAWeights(ema_in_model=state is not None))
    if validate is not None:
        callbacks.insert(0, _ValidateCallback(validate))  # first: the others read its logs
    start_epoch = (state or {}).get("epochs_done", 0)
    if state is not None:
        log.info("resuming after epoch %d of %d", start_epoch, t.epochs)
    elif baseline:
        logs = validate() if validate is not None else _evaluate(model, val_data, val_steps)
        checkpoint.set_model(model)
        checkpoint.record_baseline(logs)
        log.info("before training: %s", _format_logs(logs))
    started = time.monotonic()
    images_seen = 0
    stopped = False
    if val_data is not None:
        val_data = shard_by_data(val_data, strategy)
    for epoch in range(start_epoch, t.epochs):
        # Every worker must leave the loop at the same epoch, or the others wait for it in the next
        # epoch's collectives; the time budget is measured on each worker's own clock.
        if chief_decides(strategy, _stop_requested(stateful)):
            stopped = True
            break
        dataset = shard_by_data(train_data(epoch) if callable(train_data) else train_data, strategy)
        if reseed:
            reseed_random_layers(model, t.seed, epoch)
        epoch_callbacks = callbacks
        first_frozen = t.epochs - getattr(t, "freeze_bn_epochs", 0)
        if getattr(t, "freeze_bn_epochs", 0) and epoch >= first_frozen:
            # Frozen for this epoch's steps, thawed before the checkpoint: a frozen layer's scale and
            # shift are not trainable variables, so last.keras would hold an optimizer state with
            # fewer variables than the model rebuilt for --resume expects, and Keras drops it.
            frozen = freeze_batch_norm(model, quiet=epoch != max(first_frozen, start_epoch))
            epoch_callbacks = callbacks[:-1] + [_ThawBatchNorm(frozen), callbacks[-1]]
        if t.steps_per_epoch:
            dataset = dataset.repeat()
        # One fit call per epoch (on that epoch's dataset); epochs=t.epochs keeps "Epoch 3/30" right.
        model.fit(dataset, validation_data=val_data if validate is None else None, epochs=t.epochs,
                  initial_epoch=epoch, steps_per_epoch=steps, validation_steps=val_steps if validate is None else None,
                  shuffle=False, callbacks=epoch_callbacks + [_EndAfterOneEpoch()], verbose=verbose)
        images_seen += images_per_epoch
    return FitResult(epochs_done=(checkpoint.state["history"][-1]["epoch"] if checkpoint.state["history"] else 0),
                     seconds=time.monotonic() - started, images_seen=images_seen,
                     stopped_early=stopped or _stop_requested(stateful))


def write_summary(config, run: RunDirectory, result: FitResult, *, monitor: str, **extra) -> dict:
    """run.json: epochs, best epoch and score, time, throughput, plus `extra` fields. Returns it."""
    from skinkeras.engine import callbacks as cb

    final = cb.load_run_state(run) or {}
    elapsed = result.seconds
    summary = {
        "experiment": config.name,
        "task": config.task,
        "epochs_done": final.get("epochs_done", 0),
        "epochs_planned": config.train.epochs,
        "best_epoch": final.get("checkpoint", {}).get("best_epoch"),
        "best_" + monitor: final.get("checkpoint", {}).get("best"),
        "train_seconds_this_session": round(elapsed, 1),
        "train_seconds_total": round(final.get("callbacks", {}).get("time", {}).get("elapsed_seconds", elapsed), 1),
        "train_images_per_second": round(result.images_seen / elapsed, 2) if elapsed > 0 else None,
        "images_left_out": images_left_out(run),
        **extra,
    }
    write_json(run.summary, summary)
    return summary


def images_left_out(run: RunDirectory) -> list[str]:
    """Ids of the images the run trained without (skipped.json's excluding problems), sorted."""
    import json

    from skinkeras.data.table import EXCLUDING_KINDS

    if not run.skipped.exists():
        return []
    return sorted({p["image_id"] for p in json.loads(run.skipped.read_text()) if p["kind"] in EXCLUDING_KINDS})


def reseed_random_layers(model, seed: int, epoch: int) -> None:
    """Sets every random layer's (dropout's) seed state from (seed, epoch), so that a resumed
    epoch draws the same masks as in an uninterrupted run (a .keras file does not keep them)."""
    import numpy as np

    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    for index, state in enumerate(states):
        state.assign(np.array([seed * 1_000_003 + epoch * 7_919 + index, 0], dtype=state.dtype))


def freeze_batch_norm(model, *, quiet: bool = False) -> list:
    """Freezes every BatchNormalization layer (Keras 3: a non-trainable one also normalizes with its
    moving statistics, as at inference) and makes the next `fit` retrace its step, which reads the
    trainable variables when traced. Returns the layers it froze (none when already frozen)."""
    frozen = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layer.trainable = False
            frozen.append(layer)
    if frozen:
        model.train_function = None
        if not quiet:
            log.info("BatchNormalization frozen (%d layers) for the remaining epochs", len(frozen))
    return frozen


def uses_ema(model) -> bool:
    """Whether `model`'s optimizer keeps a moving average of the weights (`train.ema_momentum`)."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return bool(getattr(optimizer, "use_ema", False))


class ResumableSwapEMAWeights(keras.callbacks.SwapEMAWeights):
    """The averaged weights in the model for validation and at the end of every epoch (so the
    checkpoint saves them, with the raw ones in the optimizer's average slots), the raw ones while
    training. `ema_in_model`: they already are (a run resumed from its checkpoint).

    Keras' own `fit` ends by overwriting the model's weights with the averages
    (`finalize_variable_values`), meant for one fit call; the engine calls `fit` once per epoch,
    so that is turned off here (the model already holds the averages when a fit call ends)."""

    def __init__(self, ema_in_model: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = ema_in_model

    def set_model(self, model):
        super().set_model(model)
        model.optimizer.finalize_variable_values = _no_final_overwrite

    def on_epoch_end(self, epoch, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True


def _no_final_overwrite(var_list):
    del var_list


class _ThawBatchNorm(keras.callbacks.Callback):
    """Makes the layers `freeze_batch_norm` froze trainable again at the end of the epoch (before
    the checkpoint); the engine freezes them again before the next epoch."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def on_epoch_end(self, epoch, logs=None):
        for layer in self.layers:
            layer.trainable = True


def _stop_requested(stateful: dict) -> bool:
    return any(c.state.get("stopped") or c.state.get("stopped_epoch") for c in stateful.values())


def _evaluate(model, val_data, val_steps) -> dict:
    if val_data is None:
        raise SkinkerasError("a baseline score needs validation data or a validate function")
    scores = model.evaluate(val_data, steps=val_steps, return_dict=True, verbose=0)
    return {f"val_{key}": float(value) for key, value in scores.items()}


def _format_logs(logs: dict) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in logs.items())


class _EndAfterOneEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class _ValidateCallback(keras.callbacks.Callback):
    """Puts `validate()`'s scores into the epoch's logs (before the callbacks that read them)."""

    def __init__(self, validate):
        super().__init__()
        self.validate = validate

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.validate())
