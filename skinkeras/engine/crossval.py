"""k-fold cross-validation for any task: `split.folds=K` turns a run into K fold runs.

The folds are lesion-grouped and class-stratified (`skinkeras.data.splits.fold_assignment`) over
the whole dataset; fold k's run (`fold_<k>/`, a complete run of the task) tests on fold k,
validates on fold (k + 1) mod K (paper 000's nested validation fold) and trains on the other
K - 2 folds, through the task's own trainer with the fold's split.csv written first. After each
fold its test predictions are written (`fold_<k>/evaluation_test/predictions.csv`), and once all
folds are done the merged out-of-fold predictions, one row per sample (`evaluation_test/
predictions.csv` of the parent run), which `skinkeras evaluate RUN` scores with the usual
intervals. `--resume` skips finished folds and continues an interrupted one.

The parent run holds config.json (with `split.folds`), folds.csv (image_id, lesion_id, label,
fold), skipped.json and run.json (the folds' summaries).
"""

from __future__ import annotations

import dataclasses
import logging

from skinkeras.engine.run_data import load_table, write_split
from skinkeras.engine.run_directory import Evaluation, RunDirectory, as_run
from skinkeras.engine.runtime import worker_run
from skinkeras.errors import ConfigError, SkinkerasError
from skinkeras.files import write_json
from skinkeras.tasks import get_task

log = logging.getLogger(__name__)


def is_cross_validation(run: RunDirectory) -> bool:
    """Whether the run directory is a cross-validation parent run."""
    return run.folds.exists()


def fold_config(config, k: int):
    """The config of fold k's run: the parent's, without folds (its split.csv says what it trains on)."""
    return dataclasses.replace(config, name=f"{config.name}/fold_{k}", split=dataclasses.replace(config.split, folds=0))


def assign_folds(config, run: RunDirectory):
    """The dataset with a `fold` column; folds.csv is written once and reused on resume."""
    import pandas as pd

    from skinkeras.data.splits import fold_assignment

    table = load_table(config, run)
    if run.folds.exists():
        stored = pd.read_csv(run.folds, dtype={"image_id": str}, keep_default_na=False)
        fold_of = dict(zip(stored["image_id"], stored["fold"].astype(int)))
        samples = table.samples[table.samples["image_id"].isin(fold_of)].copy()
        samples["fold"] = samples["image_id"].map(fold_of)
    else:
        folds = fold_assignment(table, config.split.folds, seed=config.split.seed)
        samples = table.samples.copy()
        groups = samples["lesion_id"].astype(str)
        samples["fold"] = groups.map(folds).to_numpy()
        samples[["image_id", "lesion_id", "label", "fold"]].to_csv(run.folds, index=False)
    return dataclasses.replace(table, samples=samples.reset_index(drop=True))


def fold_table(table, k: int, folds: int):
    """The table with fold k's split (`skinkeras.data.splits.fold_split` of its `fold` column)."""
    from skinkeras.data.splits import fold_split, with_split_column

    return with_split_column(table, fold_split(table.samples["fold"].to_numpy(), k, folds))


def train_folds(config, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains every fold of `config` (split.folds = K >= 2) into `run_dir`; see the module docstring."""
    import keras

    from skinkeras.experiments.config import save_config

    run = as_run(run_dir)
    if resume:
        if not run.folds.exists():
            raise SkinkerasError(f"nothing to resume in {run.path}: it is not a cross-validation run (no {run.folds.name})")
        config = run.read_config()
    elif run.exists():
        raise SkinkerasError(f"{run.path} already holds a run: continue it with --resume or choose another --out")
    folds = config.split.folds
    if folds < 2:
        raise ConfigError(f"split.folds must be at least 2 for cross-validation. Received: {folds}")
    task = get_task(config.task, module=config.task_module)
    run = worker_run(run, config.train.strategy, resume=resume)  # the chief alone writes the run
    run.path.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config)
    table = assign_folds(config, run)
    sizes = table.samples["fold"].value_counts().sort_index()
    log.info("%d-fold cross-validation of %d images (%s per fold)", folds, len(table),
             ", ".join(str(int(n)) for n in sizes))
    summaries = {}
    for k in range(folds):
        fold = run.fold(k)
        print(f"[fold {k + 1}/{folds}] {fold.path}", flush=True)
        if fold.is_finished():
            log.info("fold %d: done already, skipped", k)
            summaries[k] = fold.read_summary()
        else:
            if not fold.split.exists():
                write_split(fold, fold_table(table, k, folds))
            summaries[k] = task.function("train")(fold_config(config, k), fold, resume="auto", verbose=verbose)
        if not fold.evaluation("test").predictions.exists():
            predictions = task.function("predict")(fold, config.data.root, split="test", fold=k)
            predictions.write(fold.evaluation("test").predictions)
        keras.backend.clear_session()
    merged = merge_fold_predictions(run)
    summary = {"experiment": config.name, "task": config.task, "folds": folds, "images": len(table),
               "out_of_fold_predictions": len(merged), "fold_runs": [str(f.path) for f in run.fold_runs()],
               "fold_summaries": {f"fold_{k}": s for k, s in summaries.items()},
               "next": f"skinkeras evaluate {run.path} --data-root {config.data.root}"}
    write_json(run.summary, summary)
    return summary


def merge_fold_predictions(run: RunDirectory):
    """The folds' test predictions as one file (every sample once), written to the parent run."""
    from skinkeras.evaluation.predictions import Predictions

    parts = []
    for k, fold in enumerate(run.fold_runs()):
        path = fold.evaluation("test").predictions
        if not path.exists():
            raise SkinkerasError(f"fold {k} has no test predictions ({path}): finish it with --resume")
        parts.append(Predictions.read(path))
    merged = Predictions.concat(parts)
    duplicated = merged.frame.duplicated(["model", "id"])
    if duplicated.any():
        raise SkinkerasError(f"{int(duplicated.sum())} samples were tested in more than one fold")
    merged.write(run.evaluation("test").predictions)
    return merged


def evaluate_folds(run_dir, data_root=None, *, split: str = "test", out_dir=None, multi_crop: bool = False,
                   **options) -> tuple[dict, dict]:
    """Scores a cross-validation run on its out-of-fold predictions (each fold's test part, predicted
    again by its run), with the task's scorer. Returns (metrics, files)."""
    from skinkeras.evaluation.predictions import Predictions

    run = as_run(run_dir)
    if split != "test":
        raise SkinkerasError("a cross-validation run is scored on its out-of-fold predictions (--split test); "
                             f"evaluate one fold's run on other data: skinkeras evaluate {run.fold(0).path} "
                             f"--data-root OTHER --split {split}")
    config = run.read_config()
    task = get_task(config.task, module=config.task_module)
    folds = run.fold_runs()
    if len(folds) != config.split.folds:
        raise SkinkerasError(f"{run.path} has {len(folds)} of its {config.split.folds} fold runs: finish it with "
                             f"skinkeras train ... --out {run.path} --resume")
    parts = []
    for k, fold in enumerate(folds):
        predictions = task.function("predict")(fold, data_root or config.data.root, split="test", fold=k,
                                               multi_crop=multi_crop, **options.get("predict", {}))
        predictions.write(fold.evaluation("test", multi_crop=multi_crop).predictions)
        parts.append(predictions)
    merged = Predictions.concat(parts)
    evaluation = Evaluation(out_dir) if out_dir else run.evaluation("test", multi_crop=multi_crop)
    written = merged.write(evaluation.predictions)
    metrics, files = task.function("score")(
        merged, evaluation.path, run_dir=folds[0], split="test", multi_crop=multi_crop, data_root=data_root,
        title=f"{run.name}: {len(folds)}-fold cross-validation, out-of-fold ({len(merged)} predictions)",
        extra={"cross_validation": {"folds": len(folds), "predictions": len(merged),
                                    "note": "every sample predicted by the fold run that left it out"}},
        **options.get("score", {}))
    return metrics, dict(files, predictions=written)
