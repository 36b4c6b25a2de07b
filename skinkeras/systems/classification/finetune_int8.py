"""Quantization-aware fine-tuning: a trained run, fine-tuned with int8 rounding simulated, as a new run.

Why: full-integer post-training quantization rounds every activation to 256 levels per tensor.
MobileNetV3Small trained from scratch on HAM10000 has heavy-tailed activations (a few calibration
images reach 30 where the median image reaches 5), so the per-tensor ranges are wide, typical
activations get a handful of levels, and the rounding noise compounds through the network: the int8
model agreed with the Keras model on 94.8 % of the test images (the export check asks for 98 %).
Fine-tuning a few epochs with that rounding in the forward pass teaches the weights to tolerate it.
Measured (16 epochs at 2e-5, `runs/accept_mnv3s_128`, 1,200 test images): agreement 97.75 % with
the converter's own calibration, 98.58 % with `skinkeras.export`'s int8 corrections (94.2 % / 96.4 %
without fine-tuning); the tuned model itself is better (balanced accuracy 0.559 -> 0.586, macro AUC
0.904 -> 0.928). The margin stays small: that model's own decisions are fragile (adding +-1 to the
pixel values flips 0.7-1.2 % of its predictions).

How: `skinkeras.quantization.simulate.with_fake_quant` clones the model graph around the *same*
layer objects (weights shared) with a `FakeQuant` where TFLite rounds; BatchNormalization is frozen
(TFLite folds its moving statistics into the conv). The fit engine trains the clone (constant
learning rate, no early stopping) and validates and saves the plain model, starting from the source
model itself as epoch 0; the ranges that go with best.keras are saved beside it (`int8_ranges.json`)
and the int8 export uses them. The run keeps the plain model (no FakeQuant layers), so it evaluates
and exports like any run, and the export's verification compares the int8 model with exactly the
model the run evaluates.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from skinkeras.engine.run_directory import RunDirectory
from skinkeras.errors import SkinkerasError
from skinkeras.quantization.fake_quant import RUN_INFO_KEY, fake_quant_ranges

log = logging.getLogger(__name__)

MONITORS = ("val_auc", "val_loss", "val_accuracy")


def _check(source: RunDirectory, out: RunDirectory, epochs: int, learning_rate: float) -> None:
    if epochs < 1:
        raise SkinkerasError(f"--epochs must be at least 1. Received: {epochs}")
    if not learning_rate > 0:
        raise SkinkerasError(f"--learning-rate must be positive. Received: {learning_rate}")
    for needed in (source.config, source.split, source.best_model):
        if not needed.exists():
            raise SkinkerasError(f"{source.path} is not a finished training run: it has no {needed.name}")
    if out.path.resolve() == source.path.resolve():
        raise SkinkerasError("--out must be a new run directory, not the source run")
    if out.path.exists() and any(out.path.iterdir()):
        raise SkinkerasError(f"{out.path} exists and is not empty; choose a new --out")


def finetune_quantization_aware(source_run, out_dir, *, epochs: int = 16, learning_rate: float = 2e-5,
                                simulate_bits: int = 8, split_hard_swish: bool = False, data_root=None,
                                observe_batches: int = 8, verbose="auto") -> dict:
    """Fine-tunes `source_run`'s best model with int8 rounding simulated into a new run `out_dir`.

    `out_dir` gets the source's config and lesion split (so the test split stays unseen), its own
    best.keras (the plain model at the best validation score, epoch 0 being the source model
    itself), int8_ranges.json, decision_rule.json (`train.decision_rule`), history.csv and run.json; evaluate and export it like any run.
    Returns run.json's contents.
    """
    import keras
    import numpy as np

    from skinkeras.engine.callbacks import atomic_write_json
    from skinkeras.engine.fit import FitResult, fit, write_summary
    from skinkeras.engine.run_data import check_images_once
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.experiments.config import apply_overrides, save_config
    from skinkeras.quantization.simulate import freeze_batchnorm, with_fake_quant
    from skinkeras.systems.classification.data import make_dataset, prepare_data
    from skinkeras.training.objectives import (
        class_counts,
        classification_loss,
        classification_metrics,
    )

    source, out = RunDirectory(source_run), RunDirectory(out_dir)
    _check(source, out, epochs, learning_rate)
    config = source.read_config()
    if config.task != "classification":
        raise SkinkerasError(f"quantization-aware fine-tuning is for classification runs; {source.path} is {config.task}")
    if data_root:
        config = apply_overrides(config, [f"data.root={Path(data_root).resolve()}"])

    out.path.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.split, out.split)
    save_config(config, out.config)
    keras.utils.set_random_seed(config.train.seed)
    data = prepare_data(config, out)
    data = dataclasses.replace(data, table=check_images_once(data.table, out))

    model = load_run_model(source)
    frozen = freeze_batchnorm(model)
    simulated, fake_quants = with_fake_quant(model, num_bits=simulate_bits, split_hard_swish=split_hard_swish,
                                             round_weights=True)
    log.info("%s: %d int8 roundings simulated, %d BatchNormalization layers frozen", model.name,
             len(fake_quants), frozen)
    num_classes = len(data.class_names)
    # No SPL / OHEM here: the curriculum belongs to training from scratch, and the loss also scores
    # validation (`validate` below), where every sample counts.
    loss = classification_loss(dataclasses.replace(config.train, sample_selection="none"),
                               class_counts(data.part("train"), num_classes), data.class_names)
    simulated.compile(optimizer=keras.optimizers.Adam(learning_rate, epsilon=config.train.adam_epsilon),
                      loss=loss, metrics=classification_metrics(num_classes))

    # The ranges start at the ranges of a few training batches (as a calibration would), so the
    # first gradient steps already see int8 rounding.
    for images, _ in make_dataset(config, data, "train", training=True, epoch=10_000).take(observe_batches):
        simulated(images, training=True)

    monitor = config.train.monitor if config.train.monitor in MONITORS else "val_auc"
    val = make_dataset(config, data, "val", training=False)

    def validate() -> dict:
        # The plain model stays uncompiled (compiling it would save an optimizer into best.keras).
        scores, losses, count = classification_metrics(num_classes), [], 0
        for images, labels in val:
            probabilities = model(images, training=False)
            losses.append(float(loss(labels, probabilities)) * int(labels.shape[0]))
            count += int(labels.shape[0])
            for metric in scores:
                metric.update_state(labels, probabilities)
        return {"val_loss": float(np.sum(losses) / max(count, 1)),
                **{f"val_{metric.name}": float(metric.result()) for metric in scores}}

    # A constant learning rate for `epochs` epochs: the source's schedule, early stopping and time
    # budget were for training from scratch.
    train_config = dataclasses.replace(config.train, epochs=epochs, learning_rate=learning_rate,
                                       lr_schedule="constant", early_stopping_patience=0, max_minutes=0.0,
                                       steps_per_epoch=0)
    batch = config.data.batch_size
    steps = max(1, int((data.table.samples["split"] == "train").sum()) // batch)
    result: FitResult = fit(
        simulated, out, train_config=train_config, steps=steps,
        # Epoch seeds 1..epochs, epoch 0 being the source model.
        train_data=lambda epoch: make_dataset(config, data, "train", training=True, epoch=epoch + 1),
        validate=validate, monitor=monitor, baseline=True, images_per_epoch=steps * batch, tensorboard=False,
        reseed=False, saved_model=model,
        on_best=lambda run: atomic_write_json(fake_quant_ranges(fake_quants), run.int8_ranges), verbose=verbose)

    from skinkeras.engine.callbacks import load_run_state

    from skinkeras.systems.classification.train import fit_decision_rule

    history = (load_run_state(out) or {}).get("checkpoint", {}).get("history", [])
    fit_decision_rule(config, out, data)  # the fine-tuned best model's own rule, as a trained run's
    return write_summary(dataclasses.replace(config, train=train_config), out, result, monitor=monitor,
                         precision=model.dtype_policy.name, **{RUN_INFO_KEY: {
                             "source_run": str(source.path.resolve()),
                             "epochs": epochs,
                             "learning_rate": learning_rate,
                             "simulated_bits": simulate_bits,
                             "split_hard_swish": split_hard_swish,
                             "simulated_roundings": len(fake_quants),
                             "batchnorm_frozen": frozen,
                             "source_" + monitor: history[0][monitor] if history else None,
                         }})
