"""Named experiments: configs in `apps/configs/` and the machinery to override and store them."""

from skinkeras.experiments.config import (
    ExperimentConfig,
    apply_overrides,
    load_config,
    save_config,
)
from skinkeras.experiments.registry import get_experiment, list_experiments
from skinkeras.experiments.sections import (
    DataConfig,
    ModelConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "SplitConfig",
    "TrainConfig",
    "apply_overrides",
    "get_experiment",
    "list_experiments",
    "load_config",
    "save_config",
]
