"""Experiment configs: nested dataclasses with typed `--set key=value` overrides.

An experiment is a named config (a Python file in `apps/configs/` with `get_config()`, after
big_vision's `configs/*.py`). `--set train.epochs=3 model.backbone=MobileNetV3Small` overrides any
field; values are parsed to the field's type, and an unknown key fails with the valid keys listed.
The resolved config is written into the run directory as `config.json`, and a run resumes from it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

from skinkeras.errors import ConfigError


@dataclasses.dataclass
class DataConfig:
    """Which data, how it is split and how it streams."""

    dataset: str = "ham10000"
    root: str = ""  # empty: the app generates synthetic data and says so
    image_size: int = 224
    batch_size: int = 32
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test by lesion
    split_seed: int = 0
    use_metadata: bool = True
    metadata_missing_p: float = 0.0  # Gessert: 0.1 (each property dropped during training)
    augment: bool = True
    color_constancy: bool = False
    balanced_sampling: bool = False
    cache: str = ""  # "", "memory" or a file path (decoded images cached before augmentation)
    limit: int = 0  # use at most this many training images (0: all); for smoke runs


@dataclasses.dataclass
class ModelConfig:
    """The classifier: backbone from the registry, head, metadata branch."""

    backbone: str = "MobileNetV3Large"
    head: str = "soft_attention"  # gap | se | soft_attention | cbam
    metadata_branch: str = "paper001"  # paper001 | gessert | none
    weights: str = ""  # "" (random init), "imagenet", or a local weights file
    attention_heads: int = 16
    attention_gamma_init: float = 0.01
    dropout: float = 0.5
    # BatchNorm moving-average momentum. -1 (auto): 0.9 when training from scratch, else the
    # backbone's own. keras.applications' MobileNetV3 uses 0.999: from scratch, a few thousand steps
    # leave the moving statistics near their initial values and inference outputs are constant.
    bn_momentum: float = -1.0


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and run control."""

    epochs: int = 30
    optimizer: str = "adam"  # adam | sgd (Nesterov)
    learning_rate: float = 1e-3
    adam_epsilon: float = 0.1  # paper 001's reference code
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss: str = "cce"  # cce | focal
    focal_gamma: float = 2.0
    class_weights: str = "balanced"  # balanced (N/(C*N_c)) | original (N/N_c) | none
    lr_schedule: str = "plateau"  # plateau | step | constant
    plateau_factor: float = 0.2
    plateau_patience: int = 5
    min_learning_rate: float = 1e-7
    step_every: int = 10
    step_factor: float = 0.5
    early_stopping_patience: int = 25
    monitor: str = "val_loss"
    precision: str = "auto"  # auto (mixed_float16 on GPU, float32 on CPU) | float32 | mixed_float16 | mixed_bfloat16
    strategy: str = "default"  # default | mirrored | multiworker
    seed: int = 0
    steps_per_epoch: int = 0  # 0: one pass over the training split
    max_minutes: float = 0.0  # stop (cleanly, after the current epoch) once this much time is used; 0: no limit


@dataclasses.dataclass
class SegmentationConfig:
    """Lesion segmentation (task "segmentation", paper 002's first stage)."""

    architecture: str = "unet"  # unet (paper 002) | unet_encoder (a registry backbone as encoder)
    encoder: str = ""  # registry backbone name for architecture=unet_encoder
    base_filters: int = 32  # filters of the first encoder block (doubled per block)
    dice_weight: float = 1.0  # loss = dice_weight * (1 - soft Dice) + bce_weight * BCE
    bce_weight: float = 1.0
    threshold: float = 0.5  # probability -> binary mask


@dataclasses.dataclass
class TwoStageConfig:
    """Paper 002's pipeline (task "two_stage"): segment, crop, five SE-CNNs, ensemble."""

    segmenter_run: str = ""  # a trained segmentation run directory ("" = train one first)
    backbones: tuple[str, ...] = ("InceptionV3", "DenseNet169", "ResNet50", "InceptionResNetV2", "Xception")
    hidden_units: int = 128  # SE -> GAP -> Dense(128) -> Dense(classes)
    crop_margin: float = 0.1  # bounding-box margin, as a fraction of the box size
    use_segmentation: bool = True
    # "segmented": classifiers on the lesion crops; "whole": on whole images (the paper's "without").
    variants: tuple[str, ...] = ("segmented", "whole")
    # Stratified, seeded share of the training images held out as the test set when the release
    # has no Test folder (classifiers train on the rest; ensembles are fitted on Validation).
    test_fraction: float = 0.2
    lc_epochs: int = 500  # LC ensemble head: full-batch Adam epochs on the validation predictions
    lc_learning_rate: float = 0.01


TASKS = ("classification", "segmentation", "two_stage")


@dataclasses.dataclass
class ExperimentConfig:
    """A whole experiment: data, model, training (and the task-specific sections)."""

    name: str = "experiment"
    description: str = ""
    task: str = "classification"  # classification | segmentation | two_stage (see skinkeras.training.tasks)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    segmentation: SegmentationConfig = dataclasses.field(default_factory=SegmentationConfig)
    two_stage: TwoStageConfig = dataclasses.field(default_factory=TwoStageConfig)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}. Received: task={self.task!r}")


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls, values: dict):
    """Builds dataclass `cls` from a nested dict, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config keys {unknown} for {cls.__name__}; valid: {sorted(fields)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value)
        else:
            kwargs[key] = _coerce(value, hint, key)
    return cls(**kwargs)


def save_config(config, path: Path) -> None:
    Path(path).write_text(json.dumps(to_dict(config), indent=2) + "\n")


def load_config(path: Path) -> ExperimentConfig:
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    return from_dict(ExperimentConfig, values)


def apply_overrides(config, overrides: list[str] | None):
    """Returns a copy of `config` with `key.sub=value` overrides applied (typed by the field)."""
    values = to_dict(config)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"an override is key=value, e.g. train.epochs=3. Received: {item!r}")
        dotted, raw = item.split("=", 1)
        node, cls = values, type(config)
        parts = dotted.strip().split(".")
        for depth, part in enumerate(parts):
            fields = {f.name for f in dataclasses.fields(cls)}
            if part not in fields:
                where = ".".join(parts[:depth]) or "the config"
                raise ConfigError(
                    f"unknown config key {dotted!r}: {where} has {sorted(fields)}"
                )
            hint = typing.get_type_hints(cls)[part]
            if depth < len(parts) - 1:
                if not dataclasses.is_dataclass(hint):
                    raise ConfigError(f"{'.'.join(parts[: depth + 1])} is not a section")
                node, cls = node[part], hint
            else:
                if dataclasses.is_dataclass(hint):
                    raise ConfigError(f"{dotted} is a section; set one of its fields")
                node[part] = _coerce(_parse(raw), hint, dotted)
    return from_dict(type(config), values)


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
