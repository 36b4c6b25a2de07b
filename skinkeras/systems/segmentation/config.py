"""The "segmentation" section of a segmentation experiment."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class SegmentationConfig:
    """Lesion segmentation (task "segmentation", paper 002's first stage)."""

    architecture: str = "unet"  # unet (paper 002) | unet_encoder (a registry backbone as encoder)
    encoder: str = ""  # registry backbone name for architecture=unet_encoder
    base_filters: int = 32  # filters of the first encoder block (doubled per block)
    dice_weight: float = 1.0  # loss = dice_weight * (1 - soft Dice) + bce_weight * BCE
    bce_weight: float = 1.0
    threshold: float = 0.5  # probability -> binary mask
