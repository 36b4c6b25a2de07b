"""The config sections every experiment has: data, split, model, train.

A task adds its own section (`skinkeras.tasks.Task.config`), stored under the task's name;
see `skinkeras.experiments.config.ExperimentConfig`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class DataConfig:
    """Which data and how it streams."""

    dataset: str = "ham10000"
    root: str = ""  # empty: the app generates synthetic data and says so
    image_size: int = 224
    batch_size: int = 32
    use_metadata: bool = True
    metadata_missing_p: float = 0.0  # Gessert: 0.1 (each property dropped during training)
    augment: bool = True
    color_constancy: bool = False
    balanced_sampling: bool = False
    cache: str = ""  # "", "memory" or a file path (decoded images cached before augmentation)
    limit: int = 0  # use at most this many training images (0: all); for smoke runs
    allow_outside_root: bool = False  # `folder` layout: let its CSV name images outside the root


@dataclasses.dataclass
class SplitConfig:
    """How the data is split, always grouped by lesion and stratified by class.

    `folds` = K >= 2 turns a run into K-fold cross-validation (paper 000's protocol): fold k's run
    tests on fold k, validates on fold (k + 1) mod K and trains on the other K - 2 folds; every
    sample is predicted once, by the fold that left it out. Otherwise one train / val / test split
    by `fractions` of the images.
    """

    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test by lesion
    seed: int = 0
    folds: int = 0  # 0: one split by `fractions`; K >= 2: K-fold cross-validation


@dataclasses.dataclass
class ModelConfig:
    """The image model: backbone from the registry, head, metadata branch."""

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
    loss: str = "cce"  # cce (paper 003's CEL) | focal (FL, exponent focal_gamma; 0 is CEL)
    focal_gamma: float = 2.0
    # balanced (N/(C*N_c)) | original (paper 003's CB, N/N_c) | effective_number (ES) | none;
    # see skinkeras.training.class_weights
    class_weights: str = "balanced"
    class_weight_beta: float = 0.0  # ES's beta in (0, 1); 0 or negative: paper 003's (N-1)/N
    # Curriculum selection within each batch (paper 003): none | spl (lowest losses) | ohem (highest);
    # m = M sigmoid(alpha * epoch) samples count, selection_alpha 0: auto, all from epochs/2 on
    sample_selection: str = "none"
    selection_alpha: float = 0.0
    lr_schedule: str = "plateau"  # plateau | step | milestones | cosine (warmup + cosine decay) | constant
    plateau_factor: float = 0.2
    plateau_patience: int = 5
    min_learning_rate: float = 1e-7
    step_every: int = 10
    step_factor: float = 0.5
    # "milestones": the learning rate times milestone_factor at each of these fractions of `epochs`
    # (paper 003: / 10 at 50 % and 75 %)
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    milestone_factor: float = 0.1
    warmup_epochs: int = 0  # "cosine": linear warmup over this many epochs, then cosine decay to min_learning_rate
    # The last this many epochs train with BatchNormalization frozen (its moving statistics and
    # scale / shift fixed, as at inference): what issue 19's int8 fine-tuning found worth points
    freeze_bn_epochs: int = 0
    label_smoothing: float = 0.0
    # Exponential moving average of the weights (Polyak averaging), 0: off. Validation, best.keras
    # and every later use (decision rule, evaluate, exports) see the averaged weights.
    ema_momentum: float = 0.0
    early_stopping_patience: int = 25
    monitor: str = "val_loss"
    precision: str = "auto"  # auto (mixed_float16 on GPU, float32 on CPU) | float32 | mixed_float16 | mixed_bfloat16
    strategy: str = "default"  # default | mirrored | multiworker
    seed: int = 0
    steps_per_epoch: int = 0  # 0: one pass over the training split
    # After training (classification): "prior" fits the softmax / prior^tau rule for balanced
    # accuracy on the val split (decision_rule.json) | "none": the plain softmax
    decision_rule: str = "prior"
    max_minutes: float = 0.0  # stop (cleanly, after the current epoch) once this much time is used; 0: no limit


COMMON_SECTIONS = {"data": DataConfig, "split": SplitConfig, "model": ModelConfig, "train": TrainConfig}

# Keys of config.json files written before the split section existed, and where they live now.
MOVED_KEYS = {"data.split_fractions": "split.fractions", "data.split_seed": "split.seed"}
