"""Training paper 000's Table 1 grid (task "eis"): every row, every fold, predictions for every lesion.

`train_eis(config, run_dir)` loads the EIS dataset, assigns lesion-grouped folds stratified by
label (folds.csv), decodes spectra and images once (`data.LesionArrays`), then trains each row of
`eis.rows` fold by fold (a "cell"; `run_files`) and writes the out-of-fold predictions.

The protocol (paper, section 2, "Dataset"): for fold k, train on three folds and validate on fold
k+1 after every epoch (AUC of one centre crop and one measurement order: cheap, and the same for
every model); with `eis.protocol="paper"` train again on all four folds for the chosen number of
epochs and predict fold k, with "select" predict fold k with the selected weights. Every lesion is
predicted once, by the models that never saw it. Ensemble rows are the max of two rows' p(malignant)
(no training). A cell is short (seconds to minutes), so it is the unit of resumption: `--resume`
keeps finished cells and restarts unfinished ones, and cells fit with Keras directly rather than
through `engine.fit` (whose per-epoch checkpoints would cost more than these cells' epochs).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from skinkeras.errors import ConfigError, SkinkerasError
from skinkeras.files import write_json
from skinkeras.systems.eis import rows as row_table
from skinkeras.systems.eis.data import CLASS_NAMES, LesionArrays, diagnoses
from skinkeras.systems.eis.fitting import binary_auc
from skinkeras.systems.eis.run_files import Cell, EISRun

log = logging.getLogger(__name__)

PROTOCOLS = ("paper", "select")


def rows_to_train(config) -> list[str]:
    """`eis.rows` plus the members of its ensembles, in training order (models before ensembles)."""
    wanted = list(config.eis.rows)
    unknown = [r for r in wanted if r not in row_table.ROWS_BY_ID]
    if unknown:
        raise ConfigError(f"eis.rows: unknown rows {unknown}; valid: {', '.join(row_table.ROW_IDS)}")
    needed = set(wanted)
    for row in wanted:
        needed.update(joint_members(row_table.ROWS_BY_ID[row], config) or row_table.ROWS_BY_ID[row].members)
    return [r for r in row_table.ROWS_BY_ID if r in needed]


def joint_members(spec, config) -> tuple[str, ...]:
    """The rows a joint model starts from with `eis.joint_init="members"` (else none)."""
    if spec.kind != "joint" or config.eis.joint_init != "members":
        return ()
    return ("gru_max", spec.cnn)


def check_config(config) -> None:
    e = config.eis
    if e.protocol not in PROTOCOLS:
        raise ConfigError(f"eis.protocol must be one of {PROTOCOLS}. Received: {e.protocol!r}")
    if e.folds < 3:
        raise ConfigError(f"eis.folds must be >= 3 (train / validate / test folds). Received: {e.folds}")
    if e.evaluate_on not in ("benign+melanoma", "all"):
        raise ConfigError(f"eis.evaluate_on must be benign+melanoma or all. Received: {e.evaluate_on!r}")
    if e.joint_init not in ("scratch", "members"):
        raise ConfigError(f"eis.joint_init must be scratch or members. Received: {e.joint_init!r}")
    if e.max_measurements < 1:
        raise ConfigError(f"eis.max_measurements must be >= 1. Received: {e.max_measurements}")
    rows_to_train(config)


def assign_folds(config, run: EISRun, table) -> pd.DataFrame:
    """folds.csv of the run (written the first time): lesion_id, label, diagnosis, fold."""
    from skinkeras.data.splits import fold_assignment

    if run.lesion_folds.is_file():
        stored = pd.read_csv(run.lesion_folds, dtype={"lesion_id": str})
        missing = set(table.samples["image_id"].astype(str)) - set(stored["lesion_id"])
        if missing:
            raise SkinkerasError(f"{len(missing)} lesions of the dataset are not in {run.lesion_folds} "
                                 f"(e.g. {sorted(missing)[0]}): is this the run's dataset?")
        return stored
    folds = fold_assignment(table, config.eis.folds, config.split.seed)
    samples = table.samples
    frame = pd.DataFrame({
        "lesion_id": samples["image_id"].astype(str).to_numpy(),
        "label": samples["label"].astype(str).to_numpy(),
        "diagnosis": diagnoses(samples),
        "fold": samples["lesion_id"].map(folds).astype(int).to_numpy(),
    })
    run.path.mkdir(parents=True, exist_ok=True)
    frame.to_csv(run.lesion_folds, index=False)
    return frame


def train_eis(config, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains (or, with `resume`, completes) the grid of `config` into `run_dir`. Returns run.json."""
    import keras

    from skinkeras.engine.fit import start_run
    from skinkeras.engine.run_data import load_table
    from skinkeras.engine.runtime import resolve_precision
    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.systems.eis import data as eis_data

    if not resume:
        check_config(config)
    config, run, _ = start_run(config, run_dir, resume=resume, holds_run=lambda r: r.config.is_file())
    run = EISRun(run.path)
    started = time.monotonic()
    table = load_table(config, run)
    folds = assign_folds(config, run, table)
    rows = rows_to_train(config)
    need_images = any(row_table.ROWS_BY_ID[r].uses_images for r in rows)
    arrays = eis_data.load_arrays(table, image_height=config.eis.image_height, image_width=config.eis.image_width,
                                  need_images=need_images)
    fold_of = folds.set_index("lesion_id")["fold"].reindex(arrays.ids).to_numpy()
    eis_data.report_truncation(arrays, config.eis.max_measurements)
    if need_images and arrays.images is None:
        raise SkinkerasError("the image rows need dermoscopy images, and no lesion of the dataset has one "
                             "(eis.rows without the CNN, ensemble-with-CNN and joint rows trains EIS alone)")
    log.info("%d lesions (%d malignant), %d measurements, %d folds; rows: %s", len(arrays), int(arrays.labels.sum()),
             int(arrays.counts.sum()), config.eis.folds, ", ".join(rows))
    dtype = resolve_precision(config.train.precision)
    seconds, merged = {}, {}
    for row in rows:
        spec = row_table.ROWS_BY_ID[row]
        row_started = time.monotonic()
        parts = []
        for k in range(config.eis.folds):
            cell = run.cell(row, k)
            if not cell.is_done():
                keras.utils.set_random_seed(config.train.seed * 1000 + k)
                train_cell(spec, config, arrays, fold_of, k, cell, dtype=dtype, run=run)
            parts.append(Predictions.read(cell.predictions))
        merged[row] = Predictions.concat(parts)
        merged[row].write(run.row_predictions(row))
        seconds[row] = round(time.monotonic() - row_started, 1)
    Predictions.concat(merged.values()).write(run.predictions)
    summary = {
        "task": "eis",
        "lesions": len(arrays),
        "malignant": int(arrays.labels.sum()),
        "measurements": int(arrays.counts.sum()),
        "folds": config.eis.folds,
        "protocol": config.eis.protocol,
        "rows": rows,
        "seconds_per_row_this_session": seconds,
        "seconds_this_session": round(time.monotonic() - started, 1),
        "predictions": str(run.predictions),
    }
    write_json(run.summary, summary)
    return summary


def _fold_rows(arrays: LesionArrays, fold_of, k: int, folds: int, spec):
    """(train on 3, validate, train on 4, test) lesion rows of fold k; image rows need an image."""
    usable = arrays.has_image if spec.uses_images else np.ones(len(arrays), bool)
    test = np.flatnonzero((fold_of == k) & usable)
    val = np.flatnonzero((fold_of == (k + 1) % folds) & usable)
    train4 = np.flatnonzero((fold_of != k) & usable)
    train3 = np.setdiff1d(train4, val)
    return train3, val, train4, test


def _write_cell(cell: Cell, arrays: LesionArrays, rows, probabilities, spec, k: int, selection: dict) -> None:
    from skinkeras.evaluation.predictions import Predictions

    Predictions.from_probabilities(
        ids=arrays.ids[rows], probabilities=probabilities, class_names=CLASS_NAMES,
        y_true=arrays.labels[rows], groups=arrays.ids[rows], model=spec.id, fold=k,
    ).write(cell.predictions)  # last: it marks the cell done
    write_json(cell.selection, selection)


def train_cell(spec, config, arrays: LesionArrays, fold_of, k: int, cell: Cell, *, dtype: str, run: EISRun) -> None:
    """Trains one row on one fold and writes its predictions of the fold's left-out lesions."""
    cell.path.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    train3, val, train4, test = _fold_rows(arrays, fold_of, k, config.eis.folds, spec)
    if spec.kind == "ensemble":
        test, probabilities, selection = _ensemble_cell(spec, run, arrays, test)
    elif spec.kind == "svm":
        probabilities, selection = _svm_cell(config, arrays, train3 if config.eis.protocol == "select" else train4,
                                             test, cell)
    else:
        from skinkeras.systems.eis.fitting import fit_keras_cell

        start_from = [run.cell(member, k).infer_model for member in joint_members(spec, config)]
        probabilities, selection = fit_keras_cell(spec, config, arrays, train3, val, train4, test, cell, dtype=dtype,
                                                  start_from=start_from)
    selection["seconds"] = round(time.monotonic() - started, 2)
    _write_cell(cell, arrays, test, probabilities, spec, k, selection)
    auc = binary_auc(arrays.labels[test], probabilities[:, 1])
    log.info("%s fold %d/%d: %s, test AUC %.3f (%d lesions), %.0f s", spec.id, k + 1, config.eis.folds,
             selection.get("summary", "done"), auc, len(test), selection["seconds"])


def _ensemble_cell(spec, run: EISRun, arrays: LesionArrays, test):
    """Max of the member rows' p(malignant) on the fold's test lesions (paper: "max ensembles"), on
    the lesions both members predicted (an image row skips lesions without an image)."""
    from skinkeras.evaluation.predictions import Predictions

    members = [Predictions.read(run.row_predictions(member)) for member in spec.members]
    shared = set.intersection(*(set(m.ids) for m in members))
    test = np.array([r for r in test if arrays.ids[r] in shared], dtype=np.int64)
    ids = arrays.ids[test]
    p = np.max(np.stack([m.aligned_to(ids).probabilities()[:, 1] for m in members]), axis=0)
    return test, np.stack([1 - p, p], axis=1), {"summary": f"max of {' and '.join(spec.members)}"}


def _svm_cell(config, arrays: LesionArrays, train, test, cell: Cell):
    """RBF SVM (C = eis.svm_c) on standardised single measurements; a lesion's score is the max over
    its measurements, squashed by a logistic (monotone, so AUC and operating points are the SVM's)."""
    import joblib
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from skinkeras.systems.eis.data import measurement_rows

    x, y = measurement_rows(arrays, train)
    model = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=config.eis.svm_c, gamma="scale"))
    model.fit(x, y)
    joblib.dump(model, cell.svm_model)
    p = svm_lesion_probabilities(model, arrays, test)
    return np.stack([1 - p, p], axis=1), {"summary": f"SVM on {len(x)} measurements"}


def svm_lesion_probabilities(model, arrays: LesionArrays, rows) -> np.ndarray:
    from skinkeras.systems.eis.data import measurement_rows

    x, _ = measurement_rows(arrays, rows)
    decision = model.decision_function(x)
    bounds = np.concatenate([[0], np.cumsum(arrays.counts[np.asarray(rows)])])
    best = np.array([decision[a:b].max() for a, b in zip(bounds[:-1], bounds[1:])])
    return 1.0 / (1.0 + np.exp(-best))
