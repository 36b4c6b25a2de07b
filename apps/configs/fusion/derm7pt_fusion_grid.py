"""Paper 004's Table 1 on derm7pt (for GPU users): ResNet-50 towers from ImageNet weights, 5-fold CV.

Every row of the paper's Table 1: macro / dsc / dsc + macro, each with and without metadata, with
and without the embedding network (Dense(1024, ReLU) x 2), the shared-tower variant of dsc + macro
+ meta, the embedding network on metadata alone and the random forest (5-fold grid search). Each of
the five folds of train + valid trains a model, keeps its best epoch on its own held-out fold, and is
scored on the official test split; the report gives mean (sd) over folds and BCa intervals on the
test split for the mean of the folds' probabilities.

    skinkeras train derm7pt_fusion_grid --data-root DERM7PT --out runs/fusion
    skinkeras evaluate runs/fusion

ImageNet weights are downloaded by Keras (`model.weights=imagenet`); offline, give a weights file
saved from the same backbone (`--set model.weights=resnet50.weights.h5`) or train from scratch
(`--set model.weights=`). Optimiser and schedule are not in our copy of the paper (its Appendix S1):
Adam 1e-4, 30 epochs, batch 32 are this project's choice. Not run here (no GPU on this machine):
67 ResNet-50 trainings of 30 epochs on ~500 cases, about 2 GPU-hours on one A100 by the CPU grid's
scaling; `derm7pt_fusion_grid_cpu` is the measured CPU sibling.
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, SplitConfig, TrainConfig
from skinkeras.systems.fusion.config import FusionConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="fusion",
        data=DataConfig(dataset="derm7pt", image_size=224, batch_size=32, use_metadata=True),
        split=SplitConfig(seed=0),
        model=ModelConfig(backbone="ResNet50", head="gap", metadata_branch="none", weights="imagenet"),
        train=TrainConfig(epochs=30, optimizer="adam", learning_rate=1e-4, adam_epsilon=1e-7, class_weights="none",
                          lr_schedule="constant", early_stopping_patience=0, precision="auto"),
        task_config=FusionConfig(protocol="cv", folds=5, backbone="ResNet50", image_size=224, epochs=30,
                                 learning_rate=1e-4, batch_size=32),
    )
