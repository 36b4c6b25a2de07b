"""What `skinkeras train` and `skinkeras evaluate` run for each experiment task.

An experiment's `task` ("classification", "segmentation", "two_stage") names its training and
evaluation functions here, as data: `module:function` strings imported on use, so a task's heavy
modules load only when that task runs. Every trainer has the signature of
`skinkeras.training.trainer.train(config, run_dir, *, resume=False, verbose="auto") -> dict`, every
evaluator that of `skinkeras.evaluation.run_evaluation.evaluate_run(run_dir, data_root, *, dataset,
split, out_dir, multi_crop, n_resamples, target_sensitivity) -> (metrics, files)`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from skinkeras.errors import ConfigError

TASKS = {
    "classification": {
        "train": "skinkeras.training.trainer:train",
        "evaluate": "skinkeras.evaluation.run_evaluation:evaluate_run",
    },
    "segmentation": {
        "train": "skinkeras.segmentation.training:train_segmentation",
        "evaluate": "skinkeras.segmentation.evaluation:evaluate_segmentation_run",
    },
    "two_stage": {
        "train": "skinkeras.two_stage.pipeline:train_two_stage",
        "evaluate": "skinkeras.two_stage.evaluation:evaluate_two_stage_run",
    },
}


def task_function(task: str, role: str):
    """The `role` ("train" or "evaluate") function of `task`."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    module_name, function_name = TASKS[task][role].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def train_experiment(config, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains `config` with its task's trainer. On resume the run's stored task decides."""
    task = config.task
    stored = Path(run_dir) / "config.json"
    if resume and stored.exists():
        from skinkeras.experiments.config import load_config

        task = load_config(stored).task
    return task_function(task, "train")(config, run_dir, resume=resume, verbose=verbose)


def evaluate_experiment_run(run_dir, data_root, **options):
    """Evaluates a run with the evaluator of the task stored in its config.json."""
    from skinkeras.errors import SkinkerasError
    from skinkeras.experiments.config import load_config

    stored = Path(run_dir) / "config.json"
    if not stored.exists():
        raise SkinkerasError(f"{run_dir} is not a training run: it has no config.json")
    return task_function(load_config(stored).task, "evaluate")(run_dir, data_root, **options)
