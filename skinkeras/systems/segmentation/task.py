"""Registers the "segmentation" task (see `skinkeras.tasks`)."""

from skinkeras.systems.segmentation.config import SegmentationConfig
from skinkeras.tasks import Task, register_task

TASK = register_task(Task(
    name="segmentation",
    summary="lesion segmentation with a U-Net, scored per image (paper 002, stage 1)",
    config=SegmentationConfig,
    element="(float32[H, W, 3] 0..255, float32[H, W, 1] mask in {0, 1})",
    serializable=("skinkeras.models", "skinkeras.preprocessing.scaling", "skinkeras.segmentation.losses"),
    build_model=".model:build_segmenter",
    make_dataset=".train:make_dataset",
    train=".train:train_segmentation",
    predict=".evaluate:predict",
    score=".evaluate:score",
))
