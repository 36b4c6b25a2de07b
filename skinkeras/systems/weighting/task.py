"""Registers the "weighting" task: paper 003's sample weighting grid (flat / hierarchical, Tables 2-5)."""

from skinkeras.systems.weighting.config import WeightingConfig
from skinkeras.tasks import Task, register_task

TASK = register_task(Task(
    name="weighting",
    summary="CEL / FL x CB / ES / SPL / OHEM x flat / hierarchical x Adam / SGD, two 80/20 splits (paper 003)",
    config=WeightingConfig,
    element='({"image": float32[S, S, 3] 0..255}, one-hot[7] (flat) | path targets[sum of heads] (hierarchical), '
            'sample weight)',
    serializable=("skinkeras.models", "skinkeras.preprocessing.scaling", "skinkeras.training.losses",
                  "skinkeras.training.selection", "skinkeras.systems.weighting.model"),
    train=".train:train_weighting",
    predict=".evaluate:predict",
    score=".evaluate:score",
))
