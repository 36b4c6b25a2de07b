"""A run directory and the name of every file in it (no other module spells a run-file name).

Layout of a run (`skinkeras train` writes it; `evaluate`, `predict`, `export` and `--resume` read it):

    config.json              the resolved experiment config (its `task` says what the run holds)
    split.csv                image_id, lesion_id, label, split (lesion-grouped, class-stratified)
    preprocessing.json       class names, image size, metadata encoding (fitted on the train split)
    skipped.json             images left out (missing, unreadable, unknown label), by image id
    checkpoints/last.keras   model + optimizer after the last finished epoch
    checkpoints/state.json   epochs done, callback states, history (written last, atomically)
    best.keras               the model at the best validation score
    history.csv, logs/       per-epoch metrics (CSV) and TensorBoard logs
    run.json                 summary: epochs, best epoch, time, images/s
    int8_ranges.json         activation ranges of a quantization-aware fine-tuned run
    decision_rule.json       the prior adjustment of the softmax fitted on the val split (classification;
                             absent: the plain softmax)
    folds.csv, fold_<k>/     k-fold cross-validation: lesion -> fold, and one complete run per fold
    evaluation_<split>/      metrics.json, report.md, predictions.csv (+ plots) of `skinkeras evaluate`
    export/saved_model/, export/tflite_<quantize>/   `skinkeras export`

A task that keeps more files names them in a subclass in its own folder (the two-stage run's crops
and member models: `skinkeras.systems.two_stage.run_files`).
"""

from __future__ import annotations

import json
from pathlib import Path

from skinkeras.errors import SkinkerasError

CONFIG = "config.json"
SPLIT = "split.csv"
PREPROCESSING = "preprocessing.json"
SKIPPED = "skipped.json"
BEST_MODEL = "best.keras"
CHECKPOINTS = "checkpoints"
LAST_MODEL = "last.keras"
STATE = "state.json"
HISTORY = "history.csv"
LOGS = "logs"
SUMMARY = "run.json"
INT8_RANGES = "int8_ranges.json"
DECISION_RULE = "decision_rule.json"
FOLDS = "folds.csv"
EXPORT = "export"

# Inside an evaluation folder.
METRICS = "metrics.json"
REPORT = "report.md"
PREDICTIONS = "predictions.csv"


class Evaluation:
    """The folder of one `skinkeras evaluate` result."""

    def __init__(self, path):
        self.path = Path(path)

    metrics = property(lambda self: self.path / METRICS)
    report = property(lambda self: self.path / REPORT)
    predictions = property(lambda self: self.path / PREDICTIONS)

    def file(self, name: str) -> Path:
        """Another file of the evaluation (plots, tables), by its file name."""
        return self.path / name

    def __repr__(self):
        return f"Evaluation({str(self.path)!r})"


class RunDirectory:
    """A run directory. `RunDirectory(path)` touches nothing on disk; the properties are paths."""

    def __init__(self, path):
        self.path = Path(path)

    def __fspath__(self):
        return str(self.path)

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r})"

    def __eq__(self, other):
        return isinstance(other, RunDirectory) and self.path.resolve() == other.path.resolve()

    def __hash__(self):
        return hash(self.path.resolve())

    @property
    def name(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / CONFIG)
    split = property(lambda self: self.path / SPLIT)
    preprocessing = property(lambda self: self.path / PREPROCESSING)
    skipped = property(lambda self: self.path / SKIPPED)
    best_model = property(lambda self: self.path / BEST_MODEL)
    checkpoints = property(lambda self: self.path / CHECKPOINTS)
    last_model = property(lambda self: self.path / CHECKPOINTS / LAST_MODEL)
    state = property(lambda self: self.path / CHECKPOINTS / STATE)
    history = property(lambda self: self.path / HISTORY)
    logs = property(lambda self: self.path / LOGS)
    summary = property(lambda self: self.path / SUMMARY)
    int8_ranges = property(lambda self: self.path / INT8_RANGES)
    decision_rule = property(lambda self: self.path / DECISION_RULE)
    folds = property(lambda self: self.path / FOLDS)

    def model_file(self, which: str = "best") -> Path:
        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last'. Received: {which!r}")
        return self.best_model if which == "best" else self.last_model

    def fold(self, k: int) -> "RunDirectory":
        """The run of cross-validation fold `k` (a complete run of the same task)."""
        return RunDirectory(self.path / f"fold_{int(k)}")

    def fold_runs(self) -> list["RunDirectory"]:
        """The fold runs present, in fold order."""
        runs = []
        for child in self.path.glob("fold_*"):
            suffix = child.name[len("fold_"):]
            if child.is_dir() and suffix.isdigit():
                runs.append((int(suffix), RunDirectory(child)))
        return [run for _, run in sorted(runs, key=lambda item: item[0])]

    def evaluation(self, split: str = "test", *, multi_crop: bool = False) -> Evaluation:
        return Evaluation(self.path / f"evaluation_{split}{'_multicrop' if multi_crop else ''}")

    def evaluations(self) -> list[Evaluation]:
        """Every evaluation folder of the run (any split), sorted by name."""
        return [Evaluation(p) for p in sorted(self.path.glob("evaluation_*")) if p.is_dir()]

    def export_dir(self, fmt: str, quantize: str | None = "float32") -> Path:
        return self.path / EXPORT / ("saved_model" if fmt == "saved_model" else f"tflite_{quantize}")

    # What the run is.

    def exists(self) -> bool:
        return self.config.exists()

    def is_started(self) -> bool:
        """Whether training wrote an epoch checkpoint here (what --resume continues)."""
        return self.state.exists()

    def is_finished(self) -> bool:
        return self.summary.exists()

    def read_config(self):
        """The run's `ExperimentConfig` (legacy config.json files included)."""
        from skinkeras.experiments.config import load_config

        if not self.config.exists():
            raise SkinkerasError(f"{self.path} is not a training run: it has no {CONFIG}")
        return load_config(self.config)

    def task_name(self) -> str:
        """The task in config.json, read without building the config."""
        return str(self.read_json(CONFIG, what="a training run").get("task", "classification"))

    def read_json(self, name: str, *, what: str = "", default=None):
        """A JSON file of the run (a path relative to it); `default` when absent (None: an error)."""
        path = self.path / name
        if not path.exists():
            if default is not None:
                return default
            raise SkinkerasError(f"{self.path} is not {what or 'a run directory'}: it has no {name}")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise SkinkerasError(f"{path} is not valid JSON: {error}") from None

    def read_preprocessing(self) -> dict:
        return self.read_json(PREPROCESSING, what="a training run")

    def read_summary(self) -> dict:
        return self.read_json(SUMMARY, default={})


def as_run(run) -> RunDirectory:
    return run if isinstance(run, RunDirectory) else RunDirectory(run)


def load_run_model(run_dir, which: str = "best"):
    """The run's best (or last) model, loaded in Keras safe mode."""
    from skinkeras.saving import load_model

    run = as_run(run_dir)
    path = run.model_file(which)
    if not path.exists():
        raise SkinkerasError(f"no {which} model in {run.path} (expected {path})")
    return load_model(path)
