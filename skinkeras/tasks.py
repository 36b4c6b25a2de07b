"""The task registry: every system (classification, segmentation, two_stage, ...) registered once.

A `Task` names, in one place, everything the engine and the command line need to run an
experiment of that kind: its config section (a dataclass stored under the task's name in
config.json and set with `--set <task>.<field>=...`), what a dataset element holds, its model
builder, its trainer, its prediction and scoring halves of `skinkeras evaluate` (predictions files
are the contract between them), its predictor (`skinkeras predict RUN`) and its exporter
(`skinkeras export RUN`), and the modules that register the Keras objects its saved models hold.

Parts are callables or "module:attribute" strings (a leading "." is relative to the package that
registers the task), imported on first use, so that listing tasks or parsing a config never
imports TensorFlow.

Where tasks come from:
- every subpackage of `skinkeras.systems` whose `task` module calls `register_task` (a new system
  is one folder there, plus its configs in `apps/configs/<name>/`);
- modules named in `SKINKERAS_TASK_MODULES` (os.pathsep-separated), or imported by an experiment
  config file: a run of such a task records the module (`task_module` in config.json), so later
  commands find it again.

Example:
    >>> register_task(Task(name="toy", summary="a toy", train="mypackage.toy:train"))  # doctest: +SKIP
    >>> get_task("toy").function("train")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
from typing import Callable

from skinkeras.errors import ConfigError

TASK_MODULES_ENV = "SKINKERAS_TASK_MODULES"
SYSTEMS_PACKAGE = "skinkeras.systems"

# The parts a task may name; each is a callable or a "module:attribute" string.
ROLES = {
    "build_model": "(config, info, dtype) -> keras.Model",
    "make_dataset": "(config, table, *, training, epoch) -> tf.data.Dataset of the task's elements",
    "train": "(config, run_dir, *, resume=False, verbose='auto') -> run summary dict",
    "predict": "(run_dir, data_root, *, dataset, split, **options) -> evaluation.predictions.Predictions",
    "score": "(predictions, out_dir, *, run_dir, title, **options) -> (metrics dict, files dict)",
    "predictor": "(run_dir) -> export.predictor.Predictor",
    "export": "(run_dir, fmt, **options) -> export result dict",
}


@dataclasses.dataclass(frozen=True)
class Task:
    """One kind of experiment and the parts that implement it.

    Args:
        name: the value of `task` in an experiment config; also the key of its config section.
        summary: one line for `skinkeras tasks`.
        config: the task's own config section (a dataclass with defaults), or None.
        element: what one dataset element holds (documentation for the data contract).
        serializable: modules to import before loading this task's `.keras` files (they register
            the custom layers, losses and metrics its models contain).
        build_model, make_dataset, train, predict, score, predictor, export: see `ROLES`.
    """

    name: str
    summary: str = ""
    config: type | None = None
    element: str = ""
    serializable: tuple[str, ...] = ()
    build_model: Callable | str | None = None
    make_dataset: Callable | str | None = None
    train: Callable | str | None = None
    predict: Callable | str | None = None
    score: Callable | str | None = None
    predictor: Callable | str | None = None
    export: Callable | str | None = None
    module: str = ""  # the module that registered it (set by register_task)

    def __post_init__(self):
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"a task name must be an identifier. Received: name={self.name!r}")
        if self.config is not None and not dataclasses.is_dataclass(self.config):
            raise ValueError(f"task {self.name!r}: config must be a dataclass. Received: {self.config!r}")

    def has(self, role: str) -> bool:
        return getattr(self, role) is not None

    def function(self, role: str) -> Callable:
        """The callable for `role` (one of `ROLES`), imported on first use."""
        if role not in ROLES:
            raise ValueError(f"unknown task role {role!r}; valid: {', '.join(ROLES)}")
        part = getattr(self, role)
        if part is None:
            raise ConfigError(f"task {self.name!r} has no {role.replace('_', ' ')}"
                              + (" (it cannot be exported)" if role == "export" else ""))
        if callable(part):
            return part
        module_name, _, attribute = part.partition(":")
        if module_name.startswith("."):
            package = self.module.rsplit(".", 1)[0] if self.module else ""
            module_name = package + module_name
        return getattr(importlib.import_module(module_name), attribute)

    @property
    def is_builtin(self) -> bool:
        return self.module.startswith(SYSTEMS_PACKAGE + ".")


_TASKS: dict[str, Task] = {}
_discovered = False


def register_task(task: Task) -> Task:
    """Adds `task` to the registry (a task registered again under its name replaces the old one:
    a module imported twice under two names registers twice). Returns it with `module` set."""
    if not task.module:
        caller = inspect.currentframe().f_back
        task = dataclasses.replace(task, module=caller.f_globals.get("__name__", ""))
    _TASKS[task.name] = task
    return task


def _discover() -> None:
    """Imports every built-in system's `task` module and the modules of SKINKERAS_TASK_MODULES."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(SYSTEMS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.ispkg:
            importlib.import_module(f"{SYSTEMS_PACKAGE}.{info.name}.task")
    for name in os.environ.get(TASK_MODULES_ENV, "").split(os.pathsep):
        if name.strip():
            import_task_module(name.strip())


def import_task_module(name: str) -> None:
    """Imports a module that registers tasks; a clear error when it cannot be imported."""
    try:
        importlib.import_module(name)
    except ImportError as error:
        raise ConfigError(f"cannot import the task module {name!r}: {error}") from None


def get_task(name: str, *, module: str = "") -> Task:
    """The registered task `name` (importing `module` first when it is given and not yet known)."""
    _discover()
    if name not in _TASKS and module:
        import_task_module(module)
    if name not in _TASKS:
        raise ConfigError(f"unknown task {name!r}; registered: {', '.join(task_names())}")
    return _TASKS[name]


def task_names() -> list[str]:
    _discover()
    return sorted(_TASKS)


def all_tasks() -> list[Task]:
    _discover()
    return [_TASKS[name] for name in sorted(_TASKS)]
