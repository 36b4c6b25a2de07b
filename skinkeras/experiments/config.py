"""Experiment configs: the common sections plus the task's own, with typed `--set key=value` overrides.

An experiment is a named config (a Python file in `apps/configs/` with `get_config()`, after
big_vision's `configs/*.py`). Its sections:

    data, split, model, train     every experiment (`skinkeras.experiments.sections`)
    <task>                        the task's own section, e.g. `segmentation`, `two_stage`: the
                                  dataclass its `Task.config` names, held in `task_config` and
                                  read as `config.<task>` too

`--set train.epochs=3 model.backbone=MobileNetV3Small two_stage.hidden_units=64` overrides any
field; values are parsed to the field's type, and an unknown key fails with the valid keys listed.
`task=NAME` is applied first (it chooses which section exists). The resolved config is written into
the run directory as `config.json`, and a run resumes from it; config.json files written before
the task sections existed (with every task's section, and `data.split_*`) still load.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

from skinkeras.errors import ConfigError
from skinkeras.experiments.sections import (
    COMMON_SECTIONS,
    MOVED_KEYS,
    DataConfig,
    ModelConfig,
    SplitConfig,
    TrainConfig,
)
from skinkeras.files import atomic_write_text
from skinkeras.tasks import get_task

TOP_LEVEL = ("name", "description", "task", "task_module")
# Sections every config.json had before tasks brought their own (dropped when not the run's task).
LEGACY_TASK_SECTIONS = ("segmentation", "two_stage")


@dataclasses.dataclass
class ExperimentConfig:
    """A whole experiment: data, split, model, training, and the task's own section.

    Args:
        task: a registered task (`skinkeras tasks` lists them).
        task_config: the task's section (an instance of its `Task.config`); its defaults when
            omitted. Also readable as `config.<task>` (e.g. `config.two_stage.backbones`).
        task_module: the module that registers a task that is not built in (set automatically).
    """

    name: str = "experiment"
    description: str = ""
    task: str = "classification"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    task_config: typing.Any = None
    task_module: str = ""

    def __post_init__(self):
        task = get_task(self.task, module=self.task_module)
        if task.config is None:
            if self.task_config is not None:
                raise ConfigError(f"task {self.task!r} has no config section. Received: {self.task_config!r}")
        elif self.task_config is None:
            self.task_config = task.config()
        elif not isinstance(self.task_config, task.config):
            raise ConfigError(f"task {self.task!r} takes a {task.config.__name__} section. "
                              f"Received: {type(self.task_config).__name__}")
        if not self.task_module and not task.is_builtin:
            self.task_module = task.module

    def __getattr__(self, name):
        # Only called for names that are not fields: `config.<task>` is the task's section.
        values = self.__dict__
        if not name.startswith("__") and name == values.get("task") and values.get("task_config") is not None:
            return values["task_config"]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (task {values.get('task')!r})")


def to_dict(config: ExperimentConfig) -> dict:
    """The config.json structure: top-level fields, the common sections, the task's section."""
    values = {"name": config.name, "description": config.description, "task": config.task}
    if config.task_module:
        values["task_module"] = config.task_module
    for key in COMMON_SECTIONS:
        values[key] = dataclasses.asdict(getattr(config, key))
    if config.task_config is not None:
        values[config.task] = dataclasses.asdict(config.task_config)
    return values


def from_dict(values: dict) -> ExperimentConfig:
    """Builds an `ExperimentConfig` from the config.json structure, rejecting unknown keys."""
    values = _migrate(values)
    task_name = str(values.get("task", "classification"))
    task = get_task(task_name, module=str(values.get("task_module", "")))
    known = set(TOP_LEVEL) | set(COMMON_SECTIONS) | ({task.name} if task.config else set())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config keys {unknown} for an ExperimentConfig of task {task.name!r}; "
                          f"valid: {sorted(known)}")
    kwargs = {key: str(values[key]) for key in TOP_LEVEL if key in values}
    for key, cls in COMMON_SECTIONS.items():
        if key in values:
            kwargs[key] = section_from_dict(cls, values[key], key)
    if task.config is not None and task.name in values:
        kwargs["task_config"] = section_from_dict(task.config, values[task.name], task.name)
    return ExperimentConfig(**kwargs)


def _migrate(values: dict) -> dict:
    """config.json of older runs: the other tasks' sections dropped, data.split_* moved to split."""
    values = {key: (dict(value) if isinstance(value, dict) else value) for key, value in values.items()}
    task = values.get("task", "classification")
    for key in LEGACY_TASK_SECTIONS:
        if key in values and key != task:
            del values[key]
    for old, new in MOVED_KEYS.items():
        (old_section, old_key), (new_section, new_key) = old.split("."), new.split(".")
        section = values.get(old_section)
        if isinstance(section, dict) and old_key in section:
            values.setdefault(new_section, {}).setdefault(new_key, section.pop(old_key))
    return values


def section_from_dict(cls, values: dict, where: str = ""):
    """Builds dataclass `cls` from a nested dict, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__} must be a section (a JSON object). Received: {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config keys {unknown} for {cls.__name__}; valid: {sorted(fields)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        name = f"{where}.{key}" if where else key
        kwargs[key] = section_from_dict(hint, value, name) if dataclasses.is_dataclass(hint) else _coerce(value, hint, name)
    return cls(**kwargs)


def save_config(config: ExperimentConfig, path: Path) -> None:
    # Atomic: the other workers of a multi-worker run read it while the chief rewrites it on resume.
    atomic_write_text(path, json.dumps(to_dict(config), indent=2) + "\n")


def load_config(path: Path) -> ExperimentConfig:
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    return from_dict(values)


def apply_overrides(config: ExperimentConfig, overrides: list[str] | None) -> ExperimentConfig:
    """Returns a copy of `config` with `key.sub=value` overrides applied (typed by the field).

    `task=...` (and `task_module=...`) go first, whatever their position: they decide which task
    section the other keys may name. Keys that moved (`data.split_fractions` -> `split.fractions`)
    are still accepted.
    """
    pairs = []
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"an override is key=value, e.g. train.epochs=3. Received: {item!r}")
        dotted, raw = item.split("=", 1)
        dotted = MOVED_KEYS.get(dotted.strip(), dotted.strip())
        pairs.append((dotted, raw))
    pairs.sort(key=lambda pair: pair[0] not in ("task", "task_module"))
    values = to_dict(config)
    for dotted, raw in pairs:
        parts = dotted.split(".")
        if len(parts) == 1:
            _set_top_level(values, dotted, raw)
            continue
        sections = _section_classes(values)
        if parts[0] not in sections:
            raise ConfigError(f"unknown config key {dotted!r}: the config has {sorted([*TOP_LEVEL, *sections])}")
        node, cls = values[parts[0]], sections[parts[0]]
        for depth, part in enumerate(parts[1:], start=1):
            fields = {f.name for f in dataclasses.fields(cls)}
            if part not in fields:
                raise ConfigError(f"unknown config key {dotted!r}: {'.'.join(parts[:depth])} has {sorted(fields)}")
            hint = typing.get_type_hints(cls)[part]
            if depth < len(parts) - 1:
                if not dataclasses.is_dataclass(hint):
                    raise ConfigError(f"{'.'.join(parts[: depth + 1])} is not a section")
                node, cls = node[part], hint
            else:
                if dataclasses.is_dataclass(hint):
                    raise ConfigError(f"{dotted} is a section; set one of its fields")
                # Text fields take the value as typed: a path may hold commas ("a, b").
                node[part] = _coerce(_parse_text(raw) if hint is str else _parse(raw), hint, dotted)
    return from_dict(values)


def _section_classes(values: dict) -> dict:
    sections = dict(COMMON_SECTIONS)
    task = get_task(values["task"], module=values.get("task_module", ""))
    if task.config is not None:
        sections[task.name] = task.config
    return sections


def _set_top_level(values: dict, key: str, raw: str) -> None:
    if key in COMMON_SECTIONS:
        raise ConfigError(f"{key} is a section; set one of its fields, e.g. {key}.{dataclasses.fields(COMMON_SECTIONS[key])[0].name}=...")
    if key not in TOP_LEVEL:
        raise ConfigError(f"unknown config key {key!r}: the config has {sorted([*TOP_LEVEL, *_section_classes(values)])}")
    value = raw.strip()
    if key == "task" and value != values["task"]:
        old = values["task"]
        task = get_task(value, module=values.get("task_module", ""))
        values.pop(old, None)
        if task.config is not None:
            values[task.name] = dataclasses.asdict(task.config())
    values[key] = value


def _parse(raw: str):
    """Parses an override value: JSON where it is JSON (numbers, true/false, lists), else a string."""
    raw = raw.strip()
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    if "," in raw:  # 0.8,0.1,0.1
        return [_parse(part) for part in raw.split(",")]
    return raw


def _parse_text(raw: str) -> str:
    """A text override: a JSON string literal unquoted, anything else as typed (no list splitting)."""
    raw = raw.strip()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, str) else raw


def _coerce(value, hint, key: str):
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1"):
                    return True
                if value.lower() in ("false", "no", "0"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return "" if value is None else str(value)
        if origin is tuple:
            args = typing.get_args(hint)
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], key) for v in items)
            if len(items) != len(args):
                raise ValueError(value)
            return tuple(_coerce(v, a, key) for v, a in zip(items, args))
        if origin in (typing.Union, types.UnionType):
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"{key} expects {getattr(hint, '__name__', hint)}. Received: {value!r}") from None
    return value
