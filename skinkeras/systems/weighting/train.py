"""Training paper 003's grid (task "weighting"): every row, every split, test predictions.

`train_weighting(config, run_dir)` loads the dataset, makes (or reads back) the lesion-grouped
splits (`data.read_or_make_splits`), then trains each row of `weighting.rows` on each split (a
"cell") and writes the cell's predictions of the split's test images, and finally the run's
predictions.csv (all cells).

A cell: the row's model (`model.build_row_model`) with the row's optimizer (Adam
`adam_learning_rate` or SGD Nesterov `sgd_learning_rate`), loss (CEL / FL, CB / ES, SPL / OHEM)
and epochs (`flat_epochs` / `hierarchical_epochs`), the learning rate times
`train.milestone_factor` at `train.lr_milestones`; class weights come from the split's training
counts. After every `validate_every` epochs the balanced accuracy on the split's validation images
is measured and the best epoch's weights are kept, saved and used for the test predictions. Every
row of a model starts from the same initial weights within a split (seed = train.seed * 1000 + k),
so the rows of a table differ by their weighting only. Cells fit with Keras directly, as the
fusion and EIS grids do: a cell is the unit of resumption.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from skinkeras.errors import ConfigError, SkinkerasError
from skinkeras.files import write_json
from skinkeras.systems.weighting import rows as row_table
from skinkeras.systems.weighting.run_files import Cell, WeightingRun

log = logging.getLogger(__name__)


def check_config(config) -> None:
    w = config.weighting
    unknown = [r for r in w.rows if r not in row_table.ROWS_BY_ID]
    if unknown:
        raise ConfigError(f"weighting.rows: unknown rows {unknown}; valid: {', '.join(row_table.ROW_IDS)}")
    if not w.rows:
        raise ConfigError("weighting.rows is empty")
    if not w.split_seeds:
        raise ConfigError("weighting.split_seeds is empty: give one seed per split (the paper: two)")
    for key in ("flat_epochs", "hierarchical_epochs", "validate_every", "cbam_ratio", "lstm_units"):
        value = getattr(w, key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"weighting.{key} must be a whole number >= 1. Received: {value!r}")


def row_train_config(row, config):
    """The `train` section as the row trains: its optimizer, learning rate, epochs, loss and weighting."""
    w = config.weighting
    return dataclasses.replace(
        config.train, optimizer=row.optimizer,
        learning_rate=w.adam_learning_rate if row.optimizer == "adam" else w.sgd_learning_rate,
        epochs=w.flat_epochs if row.model == "flat" else w.hierarchical_epochs,
        loss="focal" if row.loss == "focal" else "cce", class_weights=row.class_weights,
        sample_selection=row.sample_selection, lr_schedule="milestones")


def train_weighting(config, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains (or, with `resume`, completes) the grid of `config` into `run_dir`. Returns run.json."""
    from skinkeras.engine.fit import start_run
    from skinkeras.engine.run_data import check_images_once, load_table
    from skinkeras.engine.runtime import resolve_precision
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.systems.weighting.data import read_or_make_splits

    if not resume:
        check_config(config)
    config, run, _ = start_run(config, run_dir, resume=resume, holds_run=lambda r: r.config.is_file())
    run = WeightingRun(run.path)
    started = time.monotonic()
    table = check_images_once(load_table(config, run), run)
    splits = read_or_make_splits(config, run, table)
    rows = [r for r in row_table.ROW_IDS if r in set(config.weighting.rows)]
    taxonomy = _taxonomy(table.class_names) if any(row_table.ROWS_BY_ID[r].model == "hierarchical" for r in rows) else None
    dtype = resolve_precision(config.train.precision)
    num_splits = len(config.weighting.split_seeds)
    log.info("%d images, %d split(s); rows: %s", len(table), num_splits, ", ".join(rows))
    seconds, parts = {}, []
    for row_id in rows:
        row = row_table.ROWS_BY_ID[row_id]
        row_started = time.monotonic()
        for k in range(num_splits):
            cell = run.cell(row_id, k)
            if not cell.is_done():
                train_cell(row, config, table, splits, k, cell, taxonomy=taxonomy, dtype=dtype)
            parts.append(Predictions.read(cell.predictions))
        seconds[row_id] = round(time.monotonic() - row_started, 1)
    Predictions.concat(parts).write(run.predictions)
    summary = {"task": "weighting", "images": len(table), "splits": num_splits,
               "split_sizes": [splits[f"split_{k}"].value_counts().to_dict() for k in range(num_splits)],
               "rows": rows, "seconds_per_row_this_session": seconds,
               "seconds_this_session": round(time.monotonic() - started, 1), "predictions": str(run.predictions)}
    write_json(run.summary, summary)
    return summary


def _taxonomy(class_names):
    from skinkeras.models.hierarchical import HAM10000_TAXONOMY, Taxonomy

    try:
        return Taxonomy(HAM10000_TAXONOMY.root, tuple(class_names))
    except ValueError:
        raise SkinkerasError(f"the hierarchical rows need HAM10000's seven classes "
                             f"({', '.join(HAM10000_TAXONOMY.class_names)}); this dataset has "
                             f"{', '.join(class_names)}") from None


def train_cell(row, config, table, splits, k: int, cell: Cell, *, taxonomy, dtype: str) -> None:
    """Trains one row on split k, keeps its best validation epoch and writes its test predictions."""
    import keras

    from skinkeras.engine.callbacks import MilestoneSchedule, StopOnNonFiniteLoss
    from skinkeras.evaluation.batched import balanced_accuracy_batched
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.systems.weighting import data
    from skinkeras.systems.weighting.model import build_row_model, row_loss
    from skinkeras.training.class_weights import class_weights
    from skinkeras.training.objectives import class_counts, optimizer, selection_callbacks

    cell.path.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    train, val, test = (data.part_table(table, splits, k, part) for part in data.PARTS)
    if not len(train) or not len(test):
        raise SkinkerasError(f"split {k}: {len(train)} training and {len(test)} test images; both must be > 0")
    t = row_train_config(row, config)
    w = config.weighting
    num_classes = table.num_classes
    counts = class_counts(train, num_classes)
    keras.utils.set_random_seed(config.train.seed * 1000 + k)
    model, train_model, infer = build_row_model(row, config, taxonomy, num_classes, dtype)
    train_model.compile(optimizer=optimizer(t, dtype), loss=row_loss(row, t, counts, table.class_names),
                        jit_compile=False)
    hierarchy = sample_weights = None
    if row.model == "hierarchical":
        hierarchy = data.hierarchy_targets(taxonomy, num_classes)
        if row.class_weights != "none":
            beta = t.class_weight_beta if t.class_weight_beta > 0 else None
            sample_weights = class_weights(counts, mode=row.class_weights, beta=beta)
    callbacks = [StopOnNonFiniteLoss(), MilestoneSchedule(t.learning_rate, t.epochs, tuple(t.lr_milestones),
                                                          t.milestone_factor, t.min_learning_rate),
                 *selection_callbacks(t)]
    # Explicit step counts (the stream's cardinality is unknown to Keras; training drops the last,
    # smaller batch): a whole pass, or train.steps_per_epoch batches of the repeated stream.
    steps = t.steps_per_epoch or len(train) // config.data.batch_size
    if not steps:
        raise SkinkerasError(f"split {k}: {len(train)} training images, fewer than one batch "
                             f"(data.batch_size={config.data.batch_size})")
    history, best = [], {"bacc": -np.inf, "epoch": 0, "weights": None}
    for epoch in range(t.epochs):
        dataset = data.training_stream(config, train, epoch=epoch, num_classes=num_classes, hierarchy=hierarchy,
                                       sample_weights=sample_weights)
        if t.steps_per_epoch:
            dataset = dataset.repeat()
        epoch_started = time.monotonic()
        logs = train_model.fit(dataset, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps, verbose=0,
                               shuffle=False, callbacks=callbacks).history
        record = {"epoch": epoch + 1, "loss": float(logs["loss"][-1]),
                  "learning_rate": float(keras.ops.convert_to_numpy(train_model.optimizer.learning_rate)),
                  "train_seconds": round(time.monotonic() - epoch_started, 2)}
        if len(val) and ((epoch + 1) % w.validate_every == 0 or epoch + 1 == t.epochs):
            _, labels, probabilities = data.predict(infer, config, val)
            record["val_balanced_accuracy"] = float(balanced_accuracy_batched(labels, probabilities))
            if record["val_balanced_accuracy"] > best["bacc"]:
                best.update(bacc=record["val_balanced_accuracy"], epoch=epoch + 1, weights=model.get_weights())
        history.append(record)
        if (epoch + 1) % 10 == 0 and epoch + 1 < t.epochs:
            log.info("%s split %d: epoch %d/%d, loss %.3f%s", row.id, k, epoch + 1, t.epochs, record["loss"],
                     f", val BAcc {record['val_balanced_accuracy']:.3f}" if "val_balanced_accuracy" in record else "")
    if best["weights"] is not None:
        model.set_weights(best["weights"])
    else:  # no validation images: the last epoch
        best["epoch"] = t.epochs
    model.save(cell.model)
    ids, labels, probabilities = data.predict(infer, config, test)
    groups = table.samples.set_index(table.samples["image_id"].astype(str))["lesion_id"].astype(str)
    selection = {
        "row": row.id, "split": k, "epochs": t.epochs, "optimizer": t.optimizer, "learning_rate": t.learning_rate,
        "loss": t.loss, "class_weights": t.class_weights, "sample_selection": t.sample_selection,
        "class_counts": counts, "steps_per_epoch": steps, "chosen_epoch": best["epoch"],
        "best_val_balanced_accuracy": None if best["weights"] is None else best["bacc"],
        "train_images": len(train), "val_images": len(val), "test_images": len(test), "history": history,
        "seconds": round(time.monotonic() - started, 2)}
    write_json(cell.selection, selection)
    Predictions.from_probabilities(
        ids=ids, probabilities=probabilities, class_names=table.class_names, y_true=labels,
        groups=groups.loc[ids].to_numpy(), model=row.id, fold=k,
    ).write(cell.predictions)  # last: it marks the cell done
    log.info("%s split %d: epoch %d of %d chosen (val BAcc %s); test BAcc %.3f (%d images), %.0f s", row.id, k,
             best["epoch"], t.epochs, "n/a" if best["weights"] is None else f"{best['bacc']:.3f}",
             float(balanced_accuracy_batched(labels, probabilities)), len(test), selection["seconds"])
    keras.backend.clear_session(free_memory=True)
