"""The "fusion" section of a paper-004 experiment (late fusion of dermoscopic + clinical + metadata).

Defaults are the paper's where it gives them (section 3): ResNet-50 towers (ImageNet weights with
`model.weights=imagenet`), separate weights per modality, the largest centred square of each image,
the embedding network Dense(1024, ReLU) x 2, 5-fold cross-validation over train + valid with every
fold model scored on the official test split. Optimiser, learning rate, epochs and augmentation are
in the paper's Appendix S1, which our copy lacks: Adam 1e-4, 30 epochs, batch 32, flips, right-angle
rotations and brightness / contrast are this project's choice for fine-tuning ResNet-50.
The CPU-sized sibling (`apps/configs/fusion/derm7pt_fusion_grid_cpu.py`) shrinks it.
"""

from __future__ import annotations

import dataclasses

from skinkeras.systems.fusion.rows import ROW_IDS


@dataclasses.dataclass
class FusionConfig:
    """Paper 004's grid (task "fusion"); `model.weights` ("" / "imagenet" / a file) sets the towers' init."""

    rows: tuple[str, ...] = ROW_IDS  # Table 1 rows to train and report (fallback rows are added)
    # "cv": K folds over the official train + valid cases; fold k trains on the other folds, picks its
    # epoch on fold k, and is scored on the official test split (the paper: mean (sd) over folds).
    # "official": train on train, pick the epoch on valid, score on test (one model per row).
    protocol: str = "cv"
    folds: int = 5
    backbone: str = "ResNet50"  # any registry backbone (`skinkeras models`)
    image_size: int = 224  # the centred square of each image, resized to this
    shared_towers: bool = False  # one tower for both images in every two-image row (rows *_shared always)
    embedding_units: tuple[int, ...] = (1024, 1024)
    dropout: float = 0.0  # before the softmax (the paper names none)
    epochs: int = 30
    learning_rate: float = 1e-4
    batch_size: int = 32
    # How a two-image row starts: "scratch" (the paper: both towers from `model.weights`) or "members"
    # (each tower from the same fold's trained one-image row with the same metadata and head, then
    # the whole model trained end to end at `joint_learning_rate` for `joint_epochs`): for CPU budgets,
    # where two towers trained from scratch on a few hundred cases fall behind one.
    tower_init: str = "scratch"
    joint_epochs: int = 0  # 0: epochs
    joint_learning_rate: float = 0.0  # 0: learning_rate
    # With tower_init="members": keep the towers' weights (and batch-norm statistics) fixed and train
    # only what follows the concatenation (late fusion of the one-image rows' features).
    joint_freeze_towers: bool = False
    augment: bool = True  # flips, right-angle rotations, brightness / contrast; each image on its own
    # Metadata fields: age / sex / site through the shared encoding (site vocabulary of the dataset),
    # others (derm7pt: elevation) one-hot over the values seen in training. A field the dataset lacks
    # is left out, with one line in the log.
    metadata_fields: tuple[str, ...] = ("age", "sex", "site", "elevation")
    melanoma_class: str = "MEL"
    # Which classes count as cancer for "AUC cancer vs benign": derm7pt's basal cell carcinomas and
    # melanomas (its NEV, MISC and SK groups are benign; the paper's own fifth class, SCC, is absent).
    cancer_classes: tuple[str, ...] = ("BCC", "MEL")
    # Metadata-only random forest: a 5-fold grid search (mAP) over these on the training cases.
    forest_trees: tuple[int, ...] = (100, 300)
    forest_depths: tuple[int, ...] = (0, 4, 8)  # 0: unlimited
    forest_min_leaf: tuple[int, ...] = (1, 5)
    forest_folds: int = 5
    n_permutations: int = 10_000  # fusion vs dermoscopy-only on mAP
    # What `skinkeras predict RUN` and `skinkeras export RUN` deploy (the mean of its fold models).
    deploy_row: str = "dsc_macro_meta_emb"
