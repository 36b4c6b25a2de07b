"""Paper 000's Table 1 grid sized for a 2-core CPU (<= 60 minutes): every row, 5 folds.

Same rows, folds and report as `eis_table1`; smaller and shorter, and three deliberate departures
from the paper, each for the CPU budget:
- the two CNNs are small from-scratch networks standing in for DenseNet121 ("Dense": TinyCNN) and
  SE-ResNeXt50 ("SE-RX": TinySENet, the same blocks with squeeze-and-excitation), on 128 px crops of
  images kept at 150x200 (the shared HAM10000 copy's size), 20 epochs, Adam 1e-3, batch 16;
- EIS models: 40 epochs, Adam 1e-3, batch 32; the GRUs read each measurement through a Dense(128) +
  BN + ReLU first (`eis.gru_embedding`; without it the GRU needed ~100 epochs to learn what the
  per-measurement FC-NN learns in 30 on this data);
- joint models start from the same fold's trained state-max GRU and CNN (`eis.joint_init=members`)
  and train end to end for 8 epochs at 3e-4 (from scratch, 20 joint epochs left the EIS path
  untrained: Dense-GRU Lin. fold AUCs 0.83-0.88, no better than the CNN alone);
and the "select" protocol (fold k is predicted by the model chosen on fold k+1, trained on the other
three: half the training of "paper").

Command (the semi-synthetic paired set: real HAM10000 images, generated spectra):

    skinkeras data synth eis --images-from ham10000 --root ../shared/data/ham10000 --out eis_paired
    skinkeras train eis_table1_cpu --data-root eis_paired --out eis_cpu
    skinkeras evaluate eis_cpu
    skinkeras bench eis-stats --run eis_cpu

Measured on this 2-core machine (2026-12-07), default paired set (988 lesions, 631 benign / 357
malignant, 3,410 measurements; evaluated: 631 benign + 181 melanomas):
- Grid: 1,838 s (30.6 min) summed over its 85 cells (`bench eis-stats --run`: SVM 5 s, FC-NN 68 s,
  each GRU 75-78 s, Dense 209 s, SE-RX 290 s, each joint 153-198 s); the run was resumed once after
  the joint rows' initialisation changed (cells of the other rows do not depend on it), and several
  cells ran beside other jobs, so on an idle machine it is less. `evaluate`: 29 s (BCa intervals of 17
  rows 7.5 s and the 136-pair permutation matrix 19.3 s of it, 10,000 each).
- Specificity at 98 % sensitivity [BCa 95 %] (AUC): SVM 13.8 (71.2); FC-NN 33.4 [29.8, 37.1] (93.5);
  GRU last state 16.0 (61.7), state-mean 12.5 (76.1), state-max 30.0 [26.5, 33.6] (85.4);
  Dense 55.2 [51.2, 59.1] (82.6), SE-RX 54.5 (81.7); ensembles 43.4-54.5; joint Lin. 59.9 / 55.9,
  FC 68.5 / 76.2 [72.8, 79.4] (97.7), CA 46.9 / 70.5 (Dense / SE-RX).
- Permutation tests (10,000): GRU state-max vs last state p < 0.001; SE-RX-GRU FC vs every
  single-modality row (FC-NN, GRU state-max, Dense, SE-RX) p <= 0.0002, vs every ensemble p <= 0.001.
These are small from-scratch models on semi-synthetic spectra: they show the method and the
protocol, not the paper's numbers (the images here are more telling than the paper's: HAM10000's
melanomas against mostly nevi).
"""

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, SplitConfig, TrainConfig
from skinkeras.systems.eis.config import EISConfig


def get_config():
    return ExperimentConfig(
        description=__doc__,
        task="eis",
        data=DataConfig(dataset="eis", image_size=112, batch_size=32, use_metadata=False),
        split=SplitConfig(seed=0),
        model=ModelConfig(backbone="TinyCNN", head="gap", metadata_branch="none", weights=""),
        train=TrainConfig(epochs=20, optimizer="adam", learning_rate=1e-3, adam_epsilon=1e-7,
                          class_weights="none", lr_schedule="constant", early_stopping_patience=0),
        task_config=EISConfig(
            protocol="select",
            eis_epochs=40,
            eis_learning_rate=1e-3,
            eis_batch_size=32,
            gru_embedding=128,
            dense_backbone="TinyCNN",
            serx_backbone="TinySENet",
            image_height=150,
            image_width=200,
            crop_size=128,
            cnn_epochs=20,
            cnn_learning_rate=1e-3,
            cnn_batch_size=16,
            joint_init="members",
            joint_epochs=8,
            joint_learning_rate=3e-4,
        ),
    )
