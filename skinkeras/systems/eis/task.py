"""Registers the "eis" task: paper 000's EIS + dermoscopy grid (see `skinkeras.tasks`)."""

from skinkeras.systems.eis.config import EISConfig
from skinkeras.tasks import Task, register_task

TASK = register_task(Task(
    name="eis",
    summary="EIS + dermoscopy: GRU state pooling, CNNs, ensembles, joint models, 5-fold CV (paper 000)",
    config=EISConfig,
    element='({"image": float32[S, S, 3] 0..255, "eis": float32[T, 700], "eis_mask": float32[T]}, one-hot[2])',
    serializable=("skinkeras.systems.eis.layers", "skinkeras.models", "skinkeras.preprocessing.scaling"),
    train=".train:train_eis",
    predict=".evaluate:predict",
    score=".evaluate:score",
    predictor=".predict:EISPredictor",
    export=".export:export_eis",
))
