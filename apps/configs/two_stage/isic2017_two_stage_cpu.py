"""Paper 002's two-stage pipeline sized for a 2-core CPU: five small SE-CNNs at 96 px, ~20-25 min.

Command (a lesion segmenter first, then the pipeline, then the report):
    skinkeras train unet_ham10000_masks --data-root /path/to/HAM10000 --out runs/unet_ham10000
    skinkeras train isic2017_two_stage_cpu --data-root /path/to/ISIC2017 --out runs/isic2017_two_stage_cpu \
        --set two_stage.segmenter_run=runs/unet_ham10000
    skinkeras evaluate runs/isic2017_two_stage_cpu --data-root /path/to/ISIC2017
    make train-isic2017 DATA=/path/to/ISIC2017 SEGMENTER=runs/unet_ham10000

Same pipeline as `isic2017_two_stage` (crop with the U-Net, SE -> GAP -> Dense(128) -> Dense(3),
ensembles fitted on Validation, a stratified 20% of Training as the test set), with CPU-sized
backbones from random weights, 96x96 inputs and a time budget per model (train.max_minutes, checked
after each epoch): 2 variants x 5 models, each ~1.5 min of training plus prediction. Expect far
lower figures than the paper's (which fine-tunes ImageNet weights at 224 px for up to 100 epochs:
LC ensemble 3-class AUC 0.913); this config shows the whole pipeline end to end on real data.

Measured (niced, 2-core CPU shared with another training run: pessimistic) on the 2,150 real
images: stage 1 crops 42 s (U-Net at 96 px); training steps of 32 images at 96 px: MobileNetV3Small
0.17-0.25 s, MobileNetV3Large 0.40 s, MobileNetV2 0.53 s, ResNet50 ~2 s, DenseNet121 ~1.5-2 s, plus
30-40 s of graph tracing per model (NASNetMobile: ~1 s/step and minutes of tracing, so left out).
So one epoch of the 1,600 training images takes ~10 s (V3Small) to ~100 s (ResNet50): the
MobileNets get 4-8 epochs in the budget, ResNet50 and DenseNet121 1-2. Estimated total under that
load ~25-28 min (10 models at 2-3.5 min each incl. prediction, crops 1 min, evaluation 2 min with
10,000 bootstrap resamples); less on an idle CPU.
Measured end to end on the real copy (2026-11-22, CPU partly shared): 22.2 min of training, then
`skinkeras evaluate` in 19 s; macro AUC 0.59-0.71 across the 26 rows (from-scratch 1.5-minute models:
the pipeline works, this is not a reproduction of the paper).
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, TrainConfig
from skinkeras.systems.two_stage.config import TwoStageConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="two_stage",
        data=DataConfig(dataset="isic2017", image_size=96, batch_size=32, use_metadata=False),
        model=ModelConfig(backbone="MobileNetV3Small", head="se", metadata_branch="none"),
        train=TrainConfig(
            epochs=8,
            optimizer="adam",
            learning_rate=1e-3,  # from scratch: the paper's 1e-4 is for fine-tuning
            adam_epsilon=1e-7,
            class_weights="balanced",
            lr_schedule="plateau",
            plateau_patience=2,
            early_stopping_patience=4,
            max_minutes=1.5,
        ),
        task_config=TwoStageConfig(
            backbones=("MobileNetV3Small", "MobileNetV2", "MobileNetV3Large", "ResNet50", "DenseNet121"),
            hidden_units=128,
            crop_margin=0.1,
            variants=("segmented", "whole"),
            test_fraction=0.2,
        ),
    )
