"""The "eis" section of a paper-000 experiment (EIS + dermoscopy, Table 1).

Defaults are the paper's settings (section 2): EIS models (FC-NN, GRU) Adam, lr 2e-5, batch 10,
200 epochs; CNNs and joint models Adam, lr 2.5e-5, batch 20, 100 epochs, random 224 crops, flips,
brightness / contrast, 36-crop evaluation; GRU evaluation averaged over 5 random permutations.
The CPU-sized sibling (`apps/configs/eis/eis_table1_cpu.py`) shrinks sizes and schedules.
"""

from __future__ import annotations

import dataclasses

from skinkeras.systems.eis.rows import ROW_IDS


@dataclasses.dataclass
class EISConfig:
    """Paper 000's grid (task "eis"); `model.weights` ("" / "imagenet" / a file) sets the CNNs' init."""

    rows: tuple[str, ...] = ROW_IDS  # which Table 1 rows to train and report
    folds: int = 5  # lesion-grouped, stratified by label
    # "paper": per fold k, train on 3 folds and validate on fold k+1 to choose the epoch count, then
    # train on all 4 folds for that many epochs and predict fold k. "select": predict fold k with
    # the model selected on fold k+1 (trained on 3 folds; half the training, for CPU runs).
    protocol: str = "paper"
    evaluate_on: str = "benign+melanoma"  # the paper's evaluated set, or "all"
    target_sensitivity: float = 0.98
    n_permutations: int = 10_000  # paired permutation tests on specificity (BCa resamples: evaluate --resamples)
    max_measurements: int = 8  # T: the padded sequence length of the models' EIS input
    # EIS models (FC-NN, GRU): per-measurement FC-NN and the GRU path of the joint models.
    eis_epochs: int = 200
    eis_learning_rate: float = 2e-5
    eis_batch_size: int = 10
    gru_units: int = 64
    # Per-measurement Dense + LayerNorm + ReLU before the GRU (0: none, the paper's GRU reads the
    # normalised features directly). The CPU config uses one: see its docstring for why.
    gru_embedding: int = 0
    hidden_units: int = 64  # the Dense + BN + ReLU after the pooled GRU state
    fcnn_units: tuple[int, ...] = (256, 128)
    eval_permutations: int = 5  # GRU evaluation: mean over this many random measurement orders
    svm_c: float = 1.0
    # Image models (CNNs and joint models).
    dense_backbone: str = "DenseNet121"  # the "Dense" rows
    serx_backbone: str = "SEResNeXt50"  # the "SE-RX" rows
    image_height: int = 300  # images are resized to this before cropping (0: keep the size)
    image_width: int = 300
    crop_size: int = 224
    eval_crops: int = 36  # evenly spread crops covering the image (a square grid), averaged
    cnn_epochs: int = 100
    cnn_learning_rate: float = 2.5e-5
    cnn_batch_size: int = 20
    joint_fc_units: int = 128  # the FC fusion's hidden layer
    # How a joint model starts: "scratch" (the paper: both paths from their initialisation, trained
    # end to end) or "members" (each path from the same fold's trained single-modality model, the
    # state-max GRU and the row's CNN, then trained end to end: far fewer epochs, for CPU budgets).
    joint_init: str = "scratch"
    joint_epochs: int = 0  # 0: cnn_epochs
    joint_learning_rate: float = 0.0  # 0: cnn_learning_rate
    # What `skinkeras predict RUN` and `skinkeras export RUN` deploy: one row's fold models, averaged.
    deploy_row: str = "serx_gru_ca"
