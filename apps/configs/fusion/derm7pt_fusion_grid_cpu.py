"""Paper 004's Table 1 grid sized for a 2-core CPU (<= 60 minutes) on a set the size of derm7pt.

Same rows and report as `derm7pt_fusion_grid`; three departures, all for the CPU budget:
- a small from-scratch CNN (TinyCNN) per tower at 128 px instead of ImageNet ResNet-50 at 224
  (Adam 1e-3, 100 epochs, batch 32, the best epoch on valid kept; embedding network 2 x 256);
- the "official" protocol (each row trained once on the official train split, its epoch chosen on
  valid, scored on test) instead of 5-fold CV;
- two-image rows start each tower from the same split's trained one-image row and train what follows
  the concatenation for 40 epochs at 1e-3, towers frozen (`fusion.tower_init=members`,
  `joint_freeze_towers`): late fusion of the one-image rows' features. Chosen on validation mAP:
  from scratch, two towers fell behind one (pilot, 40 epochs, on an earlier generator whose clinical
  lesions were smaller: dsc + macro test mAP 0.476 against dsc alone 0.545); fine-tuned whole from
  the members (20 epochs at 3e-4), dsc + macro + meta reached validation mAP 0.746 with the embedding
  network and 0.730 without; with frozen towers 0.779 and 0.769.

Command (generated derm7pt-layout data, 3 % of the cases without a clinical image; derm7pt itself
cannot be redistributed):

    skinkeras data synth derm7pt --n 1011 --missing-clinical 0.03 --out derm7pt_gen
    skinkeras train derm7pt_fusion_grid_cpu --data-root derm7pt_gen --out fusion_cpu
    skinkeras evaluate fusion_cpu

Measured on this 2-core machine (2026-12-07): 1,011 cases (981 with a clinical image), official-split
sizes 404 / 202 / 405; test: 405 cases, 13 without a clinical image (predicted by the fallback rows).
- Grid: 15 min 41 s wall for all 15 rows (one-image rows 78-136 s, two-image rows 38-39 s, random
  forest 13 s; partly beside other jobs), `evaluate` 63 s (BCa 10,000 resamples x 4 metrics x 15
  rows, 7 permutation tests of 10,000).
- Test mAP [BCa 95 %] (top-1 accuracy; AUC melanoma; AUC cancer):
  no embedding network: dsc 0.652 [0.593, 0.701] (0.669; 0.903; 0.836); dsc + meta 0.743 (0.723);
  dsc + macro 0.730 (0.753); dsc + macro + meta 0.759 [0.705, 0.806] (0.768; 0.942; 0.880);
  macro 0.443, macro + meta 0.546 (392 cases with a clinical image).
  With the embedding network: dsc 0.648 [0.584, 0.700]; dsc + meta 0.602; dsc + macro 0.701
  [0.639, 0.753]; dsc + macro + meta 0.649; shared tower 0.632; macro 0.469, macro + meta 0.559.
  Metadata only: embedding network 0.394 (paper 0.391), random forest 0.379 (paper 0.402; top
  importances elevation and the head / neck site).
- Permutation tests against dsc with the same head (mAP, 10,000): without the embedding network
  dsc + macro + meta +0.107 (p = 0.0001), dsc + macro +0.078 (p = 0.0013), dsc + meta +0.091
  (p = 0.0001); with it dsc + macro +0.053 (p = 0.0495), dsc + macro + meta +0.001 (p = 0.97): its
  dermoscopy + metadata member stopped at epoch 39 (test mAP 0.602, below dsc alone), and the frozen
  late fusion inherits it; validation mAP also preferred the head without the embedding network
  (0.830 against 0.779).
`predict` / `export` deploy dsc + macro + meta without the embedding network here (`fusion.deploy_row`;
the paper config deploys the embedding-network row): the head validation mAP preferred.
These are small from-scratch models on generated images whose two views carry independent evidence
by construction: they show the method and the protocol, not the paper's numbers.
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
                                 joint_freeze_towers=True, deploy_row="dsc_macro_meta_noemb"),
    )
