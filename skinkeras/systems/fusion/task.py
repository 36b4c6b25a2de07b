"""Registers the "fusion" task: paper 004's late fusion of dermoscopic + clinical images + metadata."""

from skinkeras.systems.fusion.config import FusionConfig
from skinkeras.tasks import Task, register_task

TASK = register_task(Task(
    name="fusion",
    summary="dermoscopic + clinical + metadata late fusion, partial modalities, random forest (paper 004)",
    config=FusionConfig,
    element='({"dsc": float32[S, S, 3] 0..255, "macro": float32[S, S, 3], "metadata": float32[F]}, one-hot[C])',
    serializable=("skinkeras.models", "skinkeras.preprocessing.scaling"),
    train=".train:train_fusion",
    predict=".evaluate:predict",
    score=".evaluate:score",
    predictor=".predict:FusionPredictor",
    export=".export:export_fusion",
))
