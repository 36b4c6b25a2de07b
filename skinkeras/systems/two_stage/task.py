"""Registers the "two_stage" task (see `skinkeras.tasks`)."""

from skinkeras.systems.two_stage.config import TwoStageConfig
from skinkeras.tasks import Task, register_task

TASK = register_task(Task(
    name="two_stage",
    summary="U-Net lesion crop, five SE-CNNs and their ensembles (paper 002)",
    config=TwoStageConfig,
    element="per member model: the classification element, on lesion crops or whole images",
    serializable=("skinkeras.models", "skinkeras.preprocessing.scaling", "skinkeras.training.losses",
                  "skinkeras.segmentation.losses"),
    train=".train:train_two_stage",
    predict=".evaluate:predict",
    score=".evaluate:score",
    predictor=".predict:TwoStagePredictor",
    export=".export:export_two_stage",
))
