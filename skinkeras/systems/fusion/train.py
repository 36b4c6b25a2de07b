"""Training paper 004's Table 1 grid (task "fusion"): every row, every fold, test predictions.

`train_fusion(config, run_dir)` loads the dataset with its official split (or makes a lesion-grouped
one, for a user's CSV without a `split` column), decodes every case once (`data.load_cases`), fits
the metadata vector on the train + valid cases, then trains each row of `fusion.rows` (plus the
fallback rows they need) fold by fold and writes the test predictions.

Protocols: "cv" (the paper): the train + valid cases in K lesion-grouped folds stratified by class;
fold k trains on the other K - 1 folds, keeps the epoch with the best mAP on fold k, and predicts
the official test split; the report gives the mean (sd) over folds. "official" (CPU runs): train on
train, keep the best epoch on valid, predict test. A row with the clinical tower trains, selects and
predicts on the cases that have a clinical image; its test cases without one take its fallback row's
predictions (`predicted_by` names it). A cell (row, fold) is the unit of resumption.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd

from skinkeras.errors import ConfigError, SkinkerasError
from skinkeras.files import write_json
from skinkeras.systems.fusion import rows as row_table
from skinkeras.systems.fusion.run_files import Cell, FusionRun

log = logging.getLogger(__name__)

PROTOCOLS = ("cv", "official")
PREDICTED_BY = "predicted_by"


def rows_to_train(config) -> list[str]:
    """`fusion.rows` plus the rows they need (fallbacks; with `fusion.tower_init="members"` the
    one-image rows their towers start from), in training order: one-image rows first."""
    wanted = list(config.fusion.rows)
    unknown = [r for r in wanted if r not in row_table.ROWS_BY_ID]
    if unknown:
        raise ConfigError(f"fusion.rows: unknown rows {unknown}; valid: {', '.join(row_table.ROW_IDS)}")
    needed = set(wanted) | {row_table.ROWS_BY_ID[r].fallback for r in wanted} - {None}
    for r in wanted:
        needed.update(tower_members(row_table.ROWS_BY_ID[r], config))
    two_images = [r for r in row_table.ROW_IDS if r in needed and len(row_table.ROWS_BY_ID[r].images) > 1]
    return [r for r in row_table.ROW_IDS if r in needed and r not in two_images] + two_images


def tower_members(row, config) -> tuple[str, ...]:
    return row.members if config.fusion.tower_init == "members" else ()


def check_config(config) -> None:
    f = config.fusion
    if f.protocol not in PROTOCOLS:
        raise ConfigError(f"fusion.protocol must be one of {PROTOCOLS}. Received: {f.protocol!r}")
    if f.tower_init not in ("scratch", "members"):
        raise ConfigError(f"fusion.tower_init must be scratch or members. Received: {f.tower_init!r}")
    if f.protocol == "cv" and f.folds < 2:
        raise ConfigError(f"fusion.folds must be >= 2 for the cv protocol. Received: {f.folds}")
    for key in ("epochs", "batch_size", "image_size"):
        value = getattr(f, key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"fusion.{key} must be a whole number >= 1. Received: {value!r}")
    if f.deploy_row not in row_table.ROWS_BY_ID:
        raise ConfigError(f"fusion.deploy_row {f.deploy_row!r} is not a row; valid: {', '.join(row_table.ROW_IDS)}")
    rows_to_train(config)


def split_table(config, run: FusionRun, table):
    """`table` with its split: the run's split.csv, else the release's own (derm7pt's official
    train / valid / test), else a new lesion-grouped one by `split.fractions` (written to split.csv)."""
    from skinkeras.data.splits import train_val_test_split, with_split_column
    from skinkeras.engine.run_data import read_split, with_stored_split, write_split

    stored = read_split(run)
    if stored is not None:
        return with_stored_split(table, stored)
    split = table.samples["split"].astype(str)
    if split.isin(["train", "val", "test"]).all() and {"train", "test"} <= set(split):
        log.info("official split: %s", split.value_counts().to_dict())
    else:
        table = with_split_column(table, train_val_test_split(table, config.split.fractions, seed=config.split.seed))
        log.info("no official split in the dataset: a lesion-grouped %s split by split.fractions",
                 "/".join(f"{x:g}" for x in config.split.fractions))
    write_split(run, table)
    return table


def fold_plan(config, run: FusionRun, cases) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """[(fold, train rows, validation rows, test rows)] as positions in `cases`."""
    split = cases.frame["split"].astype(str).to_numpy()
    test = np.flatnonzero(split == "test")
    if config.fusion.protocol == "official":
        return [(0, np.flatnonzero(split == "train"), np.flatnonzero(split == "val"), test)]
    from skinkeras.data.splits import fold_assignment

    pool = np.flatnonzero(np.isin(split, ["train", "val"]))
    if run.case_folds.is_file():
        stored = pd.read_csv(run.case_folds, dtype={"image_id": str}).set_index("image_id")["fold"]
        fold = cases.frame["image_id"].astype(str).map(stored).to_numpy()
    else:
        frame = cases.frame.iloc[pool]
        by_lesion = fold_assignment(frame, config.fusion.folds, config.split.seed)
        fold = np.full(len(cases), -1)
        fold[pool] = frame["lesion_id"].map(by_lesion).to_numpy()
        pd.DataFrame({"image_id": cases.ids[pool], "fold": fold[pool]}).to_csv(run.case_folds, index=False)
    return [(k, pool[fold[pool] != k], pool[fold[pool] == k], test) for k in range(config.fusion.folds)]


def _site_vocabulary(config):
    if config.data.dataset == "derm7pt":
        from skinkeras.data import derm7pt

        return getattr(derm7pt, "DERM7PT_SITES", None)
    if config.data.dataset == "ham10000":
        from skinkeras.data.metadata import HAM10000_SITES

        return HAM10000_SITES
    return None  # the values of the dataset


def metadata_vector(config, run: FusionRun, cases):
    """The run's metadata vector (fitted on the train + valid cases once, then read back)."""
    import json

    from skinkeras.systems.fusion.features import MetadataVector

    if run.metadata_vector.is_file():
        return MetadataVector.from_config(json.loads(run.metadata_vector.read_text()))
    fitted_on = cases.frame[cases.frame["split"].isin(["train", "val"])]
    vector = MetadataVector.fit(fitted_on, config.fusion.metadata_fields, sites=_site_vocabulary(config))
    write_json(run.metadata_vector, vector.to_config())
    return vector


def train_fusion(config, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains (or, with `resume`, completes) the grid of `config` into `run_dir`. Returns run.json."""
    import keras

    from skinkeras.engine.fit import start_run
    from skinkeras.engine.run_data import load_table, log_problems
    from skinkeras.engine.runtime import resolve_precision
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.data.table import MISSING_CLINICAL
    from skinkeras.systems.fusion.data import load_cases

    if not resume:
        check_config(config)
    config, run, _ = start_run(config, run_dir, resume=resume, holds_run=lambda r: r.config.is_file())
    run = FusionRun(run.path)
    started = time.monotonic()
    table = split_table(config, run, load_table(config, run))
    cases, problems = load_cases(table, config.fusion.image_size)
    if problems:
        log_problems(problems)
    if not len(cases):
        raise SkinkerasError("no case of the dataset has a readable dermoscopic image")
    clinical_problems = [p for p in table.problems + problems if p.kind == MISSING_CLINICAL]
    write_json(run.cases, {
        "cases": len(cases), "with_clinical": int(cases.has_clinical.sum()),
        "per_split": cases.frame["split"].value_counts().to_dict(),
        "without_clinical": [{"id": p.image_id, "detail": p.detail} for p in clinical_problems],
        "left_out": [{"id": p.image_id, "kind": p.kind, "detail": p.detail}
                     for p in table.problems + problems if p.excludes]})
    rows = rows_to_train(config)
    clinical_rows = [r for r in rows if row_table.ROWS_BY_ID[r].uses_clinical]
    if clinical_rows and not cases.has_clinical.any():
        raise SkinkerasError(f"rows {', '.join(clinical_rows)} need clinical images and no case of the dataset has "
                             f"one (derm7pt: the 'clinic' column; a folder CSV: a 'clinical' column); train the "
                             f"dermoscopy and metadata rows alone with --set fusion.rows=...")
    vector = metadata_vector(config, run, cases)
    metadata = vector.encode_frame(cases.frame)
    plan = fold_plan(config, run, cases)
    log.info("%d cases (%d with a clinical image), test %d; %s protocol, %d fold(s); metadata %d features (%s); rows: %s",
             len(cases), int(cases.has_clinical.sum()), len(plan[0][3]), config.fusion.protocol, len(plan),
             vector.num_features, ", ".join(vector.fields), ", ".join(rows))
    dtype = resolve_precision(config.train.precision)
    seconds, merged = {}, {}
    for row_id in rows:
        row = row_table.ROWS_BY_ID[row_id]
        row_started = time.monotonic()
        for k, train, val, test in plan:
            cell = run.cell(row_id, k)
            if not cell.is_done():
                keras.utils.set_random_seed(config.train.seed * 1000 + k)
                start_from = [run.cell(member, k).model for member in tower_members(row, config)]
                train_cell(row, config, cases, metadata, train, val, test, cell, k, dtype=dtype, start_from=start_from)
        merged[row_id] = row_predictions(run, row, [k for k, *_ in plan])
        merged[row_id].write(run.row_predictions(row_id))
        seconds[row_id] = round(time.monotonic() - row_started, 1)
    Predictions.concat(merged[r] for r in rows).write(run.predictions)
    summary = {"task": "fusion", "cases": len(cases), "with_clinical": int(cases.has_clinical.sum()),
               "test_cases": int(len(plan[0][3])), "protocol": config.fusion.protocol, "folds": len(plan),
               "rows": rows, "seconds_per_row_this_session": seconds,
               "seconds_this_session": round(time.monotonic() - started, 1), "predictions": str(run.predictions)}
    write_json(run.summary, summary)
    return summary


def row_predictions(run: FusionRun, row, folds):
    """The row's test predictions of every fold; test cases its model could not read (no clinical
    image) from the fallback row's cell of the same fold, marked in `predicted_by`."""
    from skinkeras.evaluation.predictions import Predictions

    parts = []
    for k in folds:
        own = Predictions.read(run.cell(row.id, k).predictions)
        frame = own.frame.assign(**{PREDICTED_BY: row.id})
        if row.fallback:
            other = Predictions.read(run.cell(row.fallback, k).predictions).frame
            extra = other[~other["id"].isin(set(frame["id"]))].assign(model=row.id, **{PREDICTED_BY: row.fallback})
            frame = pd.concat([frame, extra], ignore_index=True)
        parts.append(Predictions(frame))
    return Predictions.concat(parts)


def train_cell(row, config, cases, metadata, train, val, test, cell: Cell, k: int, *, dtype: str,
               start_from=()) -> None:
    """Trains one row on one fold and writes its predictions of the test cases it can read."""
    from skinkeras.evaluation.predictions import Predictions

    cell.path.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if row.uses_clinical:
        train, val, test = (r[cases.has_clinical[r]] for r in (train, val, test))
    if row.kind == "forest":
        probabilities, selection = _forest_cell(config, cases, metadata, np.union1d(train, val), test, cell)
    else:
        probabilities, selection = fit_network_cell(row, config, cases, metadata, train, val, test, cell, dtype=dtype,
                                                    start_from=start_from)
    selection.update(seconds=round(time.monotonic() - started, 2), train_cases=int(len(train)),
                     val_cases=int(len(val)), test_cases=int(len(test)))
    Predictions.from_probabilities(
        ids=cases.ids[test], probabilities=probabilities, class_names=cases.class_names,
        y_true=cases.labels[test], groups=cases.frame["lesion_id"].astype(str).to_numpy()[test], model=row.id, fold=k,
    ).write(cell.predictions)  # last: it marks the cell done
    write_json(cell.selection, selection)
    from skinkeras.systems.fusion.stats import map_batched

    log.info("%s fold %d: %s; test mAP %.3f (%d cases), %.0f s", row.id, k, selection.get("summary", "done"),
             float(map_batched(cases.labels[test], probabilities[None])[0]), len(test), selection["seconds"])


def _forest_cell(config, cases, metadata, train, test, cell: Cell):
    import joblib

    from skinkeras.systems.fusion.forest import fit_forest, predict_forest

    groups = cases.frame["lesion_id"].astype(str).to_numpy()
    forest, selection = fit_forest(config, metadata[train], cases.labels[train], groups[train],
                                   len(cases.class_names), config.train.seed)
    joblib.dump(forest, cell.forest)
    selection["feature_importances"] = dict(zip(_feature_names(cell), forest.feature_importances_.tolist()))
    return predict_forest(forest, metadata[test], len(cases.class_names)), selection


def _feature_names(cell: Cell) -> list[str]:
    import json

    run_dir = cell.path.parents[2]
    return json.loads((run_dir / "metadata_vector.json").read_text())["feature_names"]


def start_towers(model, paths) -> list[str]:
    """Copies into `model`'s towers the towers of the member models at `paths` (the dermoscopic
    row's "dsc_tower" into "dsc_tower", or into "shared_tower"; the clinical row's "macro_tower").
    Returns the towers set."""
    from skinkeras.saving import load_model

    names = {layer.name for layer in model.layers}
    copied = []
    for path in paths:
        member = load_model(path, compile=False)
        for layer in member.layers:
            if not layer.name.endswith("_tower"):
                continue
            target = layer.name if layer.name in names else "shared_tower" if "shared_tower" in names else None
            if target is not None:
                model.get_layer(target).set_weights(layer.get_weights())
                copied.append(f"{target} <- {path.parent.parent.name}")
    return copied


def fit_network_cell(row, config, cases, metadata, train, val, test, cell: Cell, *, dtype: str, start_from=()):
    """Trains the row's network for fusion.epochs epochs (a two-image row started from its members:
    fusion.joint_epochs at fusion.joint_learning_rate), keeps the epoch with the best validation
    mAP, saves it and returns (test probabilities, selection record)."""
    import keras

    from skinkeras.engine.callbacks import StopOnNonFiniteLoss
    from skinkeras.systems.fusion import data as fusion_data
    from skinkeras.systems.fusion.model import build_fusion_model
    from skinkeras.systems.fusion.stats import map_batched
    from skinkeras.training.objectives import optimizer

    f = config.fusion
    model = build_fusion_model(
        row, num_classes=len(cases.class_names), backbone=f.backbone, image_size=f.image_size,
        metadata_features=metadata.shape[1], embedding_units=tuple(f.embedding_units), dropout=f.dropout,
        shared=f.shared_towers, weights=config.model.weights or None, dtype=dtype)
    copied = start_towers(model, start_from)
    epochs, learning_rate = f.epochs, f.learning_rate
    if start_from:
        epochs, learning_rate = f.joint_epochs or f.epochs, f.joint_learning_rate or f.learning_rate
        if f.joint_freeze_towers:
            for layer in model.layers:
                if layer.name.endswith("_tower"):
                    layer.trainable = False  # Keras 3: a frozen BatchNormalization also runs in inference mode
    model.compile(optimizer=optimizer(dataclasses.replace(config.train, learning_rate=learning_rate), dtype),
                  loss="categorical_crossentropy", jit_compile=False)
    history, best = [], {"map": -np.inf, "epoch": 0, "weights": None}
    for epoch in range(epochs):
        data = fusion_data.training_dataset(row, cases, metadata, train, batch_size=f.batch_size,
                                            seed=config.train.seed * 1000 + epoch, augment_images=f.augment)
        loss = float(model.fit(data, epochs=1, verbose=0, shuffle=False,
                               callbacks=[StopOnNonFiniteLoss()]).history["loss"][-1])
        score = float(map_batched(cases.labels[val], fusion_data.predict(model, row, cases, metadata, val)[None])[0])
        history.append({"epoch": epoch + 1, "loss": loss, "val_map": score})
        if (epoch + 1) % 10 == 0 and epoch + 1 < epochs:
            log.info("%s: epoch %d/%d, loss %.3f, validation mAP %.3f (best %.3f)", row.id, epoch + 1, epochs,
                     loss, score, max(score, best["map"]))
        if score > best["map"]:
            best.update(map=score, epoch=epoch + 1, weights=model.get_weights())
    if best["weights"] is not None:
        model.set_weights(best["weights"])
    model.save(cell.model)
    probabilities = fusion_data.predict(model, row, cases, metadata, test)
    keras.backend.clear_session(free_memory=True)
    return probabilities, {"epochs": epochs, "learning_rate": learning_rate, "chosen_epoch": best["epoch"],
                           "towers_frozen": bool(start_from) and f.joint_freeze_towers,
                           "best_val_map": best["map"], "towers_started_from": copied, "history": history,
                           "summary": f"epoch {best['epoch']} of {epochs} (val mAP {best['map']:.3f})"
                                      + (f", towers from {', '.join(c.split(' <- ')[1] for c in copied)}" if copied else "")}
