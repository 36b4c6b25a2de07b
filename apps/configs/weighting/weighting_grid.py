"""Paper 003's sample weighting grid (Barata & Santiago, Tables 2-5) at the paper's size.

All 40 rows: loss CEL / FL (gamma 1, the paper's best "in almost all of the experiments") x
weighting none / CB / ES / SPL / OHEM x the flat CBAM model and the hierarchical model (per-level
CBAM + LSTM over the HAM10000 taxonomy) x Adam 1e-5 / SGD with Nesterov momentum 1e-4; VGG16 with
ImageNet weights, 299 px (the paper resizes every image to 299 x 299), Shades of Gray colour
normalisation, flips / affine / colour augmentation, dropout 0.5, batch 20, 150 epochs (flat) or
250 (hierarchical), the learning rate / 10 at 50 % and 75 % of them; two lesion-grouped random
80/20 splits of the dataset (seeds 0 and 1), 10 % of each 80 % held out to choose the epoch (best
balanced accuracy; the paper names no validation part). Our data: HAM10000 (the ISIC 2018 task 3
training set, the paper's data set).

Command:

    skinkeras train weighting_grid --data-root ../shared/data/ham10000 --out weighting
    skinkeras evaluate weighting

NOT run: 80 cells of VGG16 for 150-250 epochs each need GPU days. The paper's figures are in
`skinkeras.systems.weighting.rows.PAPER_TABLES` and beside ours in the report (tables.md).
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, SplitConfig, TrainConfig
from skinkeras.systems.weighting.config import WeightingConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="weighting",
        data=DataConfig(dataset="ham10000", image_size=299, batch_size=20, use_metadata=False, augment=True,
                        color_constancy=True),
        split=SplitConfig(seed=0),
        model=ModelConfig(backbone="VGG16", head="cbam", metadata_branch="none", weights="imagenet"),
        train=TrainConfig(optimizer="adam", adam_epsilon=1e-7, momentum=0.9, focal_gamma=1.0,
                          lr_schedule="milestones", lr_milestones=(0.5, 0.75), milestone_factor=0.1,
                          early_stopping_patience=0, class_weights="none"),
        task_config=WeightingConfig(flat_epochs=150, hierarchical_epochs=250, adam_learning_rate=1e-5,
                                    sgd_learning_rate=1e-4),
    )
