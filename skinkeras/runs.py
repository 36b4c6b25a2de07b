"""What the command line does with a run, whatever its task: train, evaluate, predict, export.

Each function reads the run's task (config.json) and calls that task's part (`Task` in
`skinkeras.tasks`); cross-validation runs go through `skinkeras.engine.crossval`. Evaluation
is always predictions first (a predictions file beside the metrics), then the task's scores of it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from skinkeras.engine.crossval import evaluate_folds, is_cross_validation, train_folds
from skinkeras.engine.run_directory import RunDirectory, as_run
from skinkeras.errors import SkinkerasError
from skinkeras.tasks import get_task

log = logging.getLogger(__name__)


def task_of(run: RunDirectory):
    """The registered task of a run directory (its config.json)."""
    values = run.read_json(run.config.name, what="a training run")
    return get_task(str(values.get("task", "classification")), module=str(values.get("task_module", "")))


def train_experiment(config, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains `config` with its task's trainer (K-fold cross-validation with `split.folds` >= 2).
    On resume the run's stored config decides."""
    run = as_run(run_dir)
    if resume:
        config = run.read_config()
    if config.split.folds or is_cross_validation(run):
        return train_folds(config, run, resume=resume, verbose=verbose)
    task = get_task(config.task, module=config.task_module)
    return task.function("train")(config, run, resume=resume, verbose=verbose)


def evaluate_run(run_dir, data_root=None, *, dataset: str | None = None, split: str | None = None, out_dir=None,
                 multi_crop: bool = False, n_resamples: int = 10_000, target_sensitivity: float = 0.98,
                 seed: int = 0) -> tuple[dict, dict]:
    """Predicts with the run's models (`split` of its dataset, or every image of another root with
    split="all"), writes predictions.csv, then the task's metrics and report. Returns (metrics, files).
    `run_dir` may also be an export (`evaluate_export`); `split` None: "test" for a run, "all" for an export."""
    run = as_run(run_dir)
    score_options = {"n_resamples": n_resamples, "target_sensitivity": target_sensitivity, "seed": seed}
    if not run.exists() and is_export(run.path):
        if data_root is None:
            raise SkinkerasError("evaluating an export needs --data-root (the images to score)")
        if multi_crop:
            raise SkinkerasError("--multi-crop needs a run directory: an export takes whole images")
        return evaluate_export(run.path, data_root, dataset=dataset, split=split, out_dir=out_dir, **score_options)
    if not run.exists():
        raise SkinkerasError(f"{run.path} is not a training run: it has no {run.config.name}")
    if data_root is None and split != "all":  # the run's own split of its own dataset
        data_root = run.read_config().data.root or None
    split = split or "test"
    if is_cross_validation(run):
        return evaluate_folds(run, data_root, split=split, out_dir=out_dir, multi_crop=multi_crop,
                              predict={"dataset": dataset}, score=score_options)
    task = task_of(run)
    predictions = task.function("predict")(run, data_root, dataset=dataset, split=split, multi_crop=multi_crop)
    evaluation = run.evaluation(split, multi_crop=multi_crop)
    out = Path(out_dir) if out_dir else evaluation.path
    out.mkdir(parents=True, exist_ok=True)
    written = predictions.write(out / evaluation.predictions.name)
    metrics, files = task.function("score")(predictions, out, run_dir=run, split=split, multi_crop=multi_crop,
                                            data_root=data_root, dataset=dataset, **score_options)
    return metrics, {**files, "predictions": written}


def is_export(path) -> bool:
    """A SavedModel folder, a `.tflite` file or a folder holding model.tflite."""
    from skinkeras.export.litert import MODEL_FILE

    path = Path(path)
    return ((path / "saved_model.pb").is_file() or (path / MODEL_FILE).is_file()
            or (path.is_file() and path.suffix == ".tflite"))


def evaluate_export(export_path, data_root, *, dataset: str | None = None, split: str | None = "all", out_dir=None,
                    n_resamples: int = 10_000, target_sensitivity: float = 0.98, seed: int = 0) -> tuple[dict, dict]:
    """An export measured on every image under `data_root`, from its own files (no run): the
    same predictions.csv, metrics.json and report as a classification run's evaluation (its
    scorer), with the export's kind, unknown metadata and unreadable images in the report."""
    from skinkeras.data.registry import load_dataset
    from skinkeras.engine.run_directory import Evaluation
    from skinkeras.export.evaluate import export_description, guess_dataset, notes, predict_table
    from skinkeras.export.predictor import load_export_predictor

    if split not in (None, "all"):
        raise SkinkerasError(f"an export has no split of its own: evaluate it on every image under --data-root "
                             f"with --split all. Received: --split {split}")
    if not data_root or not Path(data_root).is_dir():
        raise SkinkerasError(f"evaluating an export needs --data-root DIR, a folder. Received: {data_root!r}")
    if not out_dir:
        raise SkinkerasError("evaluating an export needs --out DIR (nothing is written into the export)")
    description = export_description(export_path)
    predictor = load_export_predictor(export_path)
    table = load_dataset(dataset or guess_dataset(data_root), data_root)
    for problem in table.problems:
        if problem.excludes:
            log.warning("left out %s: %s %s", problem.image_id, problem.kind, problem.detail)
    predictions, info = predict_table(predictor, table, progress=True, model=description["kind"])
    out = Evaluation(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    written = predictions.write(out.predictions)
    info = {"export": description, **info}
    extra = {"export": description, "data_root": str(data_root), "dataset": table.name,
             "skipped_images": info["skipped_images"], "metadata_inputs": info["metadata"],
             "notes": notes(info, data_root)}
    title = f"{Path(description['path']).name} ({description['kind']} export): all images under {data_root}"
    metrics, files = get_task("classification").function("score")(
        predictions, out.path, title=f"{title} ({len(predictions)} images)", split="all", extra=extra,
        n_resamples=n_resamples, target_sensitivity=target_sensitivity, seed=seed)
    return metrics, {**files, "predictions": written}


def load_predictor(path):
    """A predictor for a run directory (its task's), a SavedModel folder or a `.tflite` file."""
    from skinkeras.export.predictor import load_export_predictor

    path = Path(path)
    run = RunDirectory(path)
    # A classification run is complete with its preprocessing.json; other tasks' predictors check
    # their own files (an EIS run has none: its fold models are under cells/).
    if path.is_dir() and run.exists() and (run.preprocessing.exists() or task_of(run).name != "classification"):
        if is_cross_validation(run):
            raise SkinkerasError(f"{path} is a cross-validation run: predict with one fold's run ({run.fold(0).path})")
        return task_of(run).function("predictor")(run)
    return load_export_predictor(path)


def export_run(run_dir, fmt: str = "saved_model", **options) -> dict:
    """Exports the run with its task's exporter (see `skinkeras export --help`)."""
    run = as_run(run_dir)
    if not run.exists():
        raise SkinkerasError(f"{run.path} is not a training run: it has no {run.config.name}")
    if is_cross_validation(run):
        raise SkinkerasError(f"{run.path} is a cross-validation run: export one fold's run ({run.fold(0).path})")
    return task_of(run).function("export")(run, fmt, **options)
