"""The "two_stage" section of a two-stage experiment (paper 002)."""

from __future__ import annotations

import dataclasses


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
    # The system `predict` and `export` apply to a new image: one variant's five models and one
    # in-graph ensemble (lc_head, average or max) fitted on the validation predictions.
    deploy_variant: str = "segmented"
    deploy_ensemble: str = "lc_head"
