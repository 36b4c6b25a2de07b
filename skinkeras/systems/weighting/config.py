"""The "weighting" section of a paper-003 experiment (sample weighting grid, Tables 2-5).

Defaults are the paper's where it gives them (section 4): VGG16 (ImageNet weights with
`model.weights=imagenet`) with CBAM, flat and hierarchical models, mini-batches of 20, Adam 1e-5 or
SGD with Nesterov momentum 1e-4, the learning rate / 10 at 50 % and 75 % of the epochs (150 flat,
250 hierarchical), dropout 0.5, two lesion-grouped random 80/20 splits of the training set. The
paper names no validation part: here each split's 80 % holds out `val_fraction` of its images
(lesion-grouped, stratified) to choose the epoch (best balanced accuracy). Focal loss gamma: the
paper found 1 best "in almost all of the experiments" (`train.focal_gamma` in its config).

What each row varies (optimizer, loss, class weights, sample selection, learning rate, epochs)
replaces the `train` section's field for that row; the rest of `train` (adam_epsilon, momentum,
focal_gamma, class_weight_beta, selection_alpha, lr_milestones, milestone_factor, seed,
steps_per_epoch, precision) applies to every row, and `data` gives image_size, batch_size,
augment, color_constancy and cache. The CPU-sized sibling (`apps/configs/weighting/
weighting_grid_cpu.py`) shrinks it.
"""

from __future__ import annotations

import dataclasses

from skinkeras.systems.weighting.rows import ROW_IDS


@dataclasses.dataclass
class WeightingConfig:
    """Paper 003's grid (task "weighting"); the backbone is `model.backbone`, its init `model.weights`."""

    rows: tuple[str, ...] = ROW_IDS  # which rows (cells of Tables 2-5) to train and report
    split_seeds: tuple[int, ...] = (0, 1)  # one lesion-grouped 80/20 split per seed (the paper: two)
    test_fraction: float = 0.2
    val_fraction: float = 0.1  # of each split's training 80 %, for choosing the epoch
    flat_epochs: int = 150
    hierarchical_epochs: int = 250
    adam_learning_rate: float = 1e-5
    sgd_learning_rate: float = 1e-4
    cbam_ratio: int = 16
    lstm_units: int = 256  # the hierarchical model's LSTM (the paper does not give it)
    dropout: float = 0.5
    validate_every: int = 1  # epochs between validations (the last epoch is always validated)
    n_permutations: int = 10_000  # each row vs its CEL baseline on BAcc, per split
