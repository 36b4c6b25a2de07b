"""Building blocks for the named configs in apps/configs (so each config file stays a few lines)."""

from __future__ import annotations

import dataclasses

from skinkeras.experiments.config import ExperimentConfig
from skinkeras.experiments.sections import DataConfig, ModelConfig, TrainConfig


def ham10000_soft_attention(
    backbone: str,
    image_size: int,
    *,
    description: str = "",
    metadata_branch: str = "paper001",
    epochs: int = 250,
) -> ExperimentConfig:
    """Paper 001 (Nguyen et al.): backbone + soft-attention module + metadata + balanced weights.

    Training as in the paper's reference code: Adam(lr 1e-3, epsilon 0.1), batch 32,
    ReduceLROnPlateau(factor 0.2, patience 5, min 1e-7), early stopping (patience 25, 250 epochs).
    Unlike the paper, splits are grouped by lesion (the paper split by image, which leaks).
    """
    return ExperimentConfig(
        description=description,
        data=DataConfig(dataset="ham10000", image_size=image_size, batch_size=32),
        model=ModelConfig(
            backbone=backbone, head="soft_attention", metadata_branch=metadata_branch
        ),
        train=TrainConfig(
            epochs=epochs,
            optimizer="adam",
            learning_rate=1e-3,
            adam_epsilon=0.1,
            class_weights="balanced",
            lr_schedule="plateau",
            plateau_factor=0.2,
            plateau_patience=5,
            min_learning_rate=1e-7,
            early_stopping_patience=25,
        ),
    )


def ham10000_from_scratch_cpu(
    backbone: str,
    *,
    description: str = "",
    epochs: int,
    early_stopping_patience: int,
    image_size: int = 128,
) -> ExperimentConfig:
    """`ham10000_soft_attention` with the from-scratch CPU recipe (ham10000_from_scratch_cpu's
    docstring says why): decoded images cached in memory; Adam(lr 3e-4, epsilon 1e-7); the plateau
    schedule watches val macro AUC, halving the rate after 6 epochs without gain (min 1e-6); a
    55-minute budget."""
    config = ham10000_soft_attention(backbone, image_size, description=description, epochs=epochs)
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, cache="memory"),
        train=dataclasses.replace(
            config.train,
            learning_rate=3e-4,
            adam_epsilon=1e-7,
            monitor="val_auc",
            plateau_factor=0.5,
            plateau_patience=6,
            min_learning_rate=1e-6,
            early_stopping_patience=early_stopping_patience,
            max_minutes=55.0,
        ),
    )
