"""Segmentation loss and metrics: Dice + BCE loss, soft Dice, Jaccard (IoU), ISIC thresholded Jaccard.

Every score is computed per image, then averaged over images (the ISIC 2017/2018 challenge
convention), never pooled over the pixels of a batch. Conventions:

- Jaccard (IoU) of two empty masks is 1 (nothing to find, nothing predicted: a perfect answer);
  an empty prediction of a non-empty mask, or the reverse, scores 0. Dice likewise.
- ISIC thresholded Jaccard (ISIC 2018 task 1): a per-image Jaccard below 0.65 counts as 0.
- Metrics binarise the predicted probabilities at `threshold` (0.5); the loss uses soft Dice on
  the probabilities, with `smooth` = 1 in numerator and denominator (which also makes an empty
  prediction of an empty mask a soft Dice of 1).

Keras objects (registered, serializable): `DiceBCELoss`, `MeanJaccard`, `MeanDice`. NumPy
versions for evaluation: `jaccard_per_image`, `dice_per_image`, `thresholded_jaccard`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

ISIC_JACCARD_CUT = 0.65


def _per_image_sums(y_true, y_pred):
    y_true = ops.reshape(ops.cast(y_true, "float32"), (ops.shape(y_true)[0], -1))
    y_pred = ops.reshape(ops.cast(y_pred, "float32"), (ops.shape(y_pred)[0], -1))
    intersection = ops.sum(y_true * y_pred, axis=1)
    return intersection, ops.sum(y_true, axis=1), ops.sum(y_pred, axis=1)


def soft_dice(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice per image, `(2 sum(t p) + s) / (sum t + sum p + s)`, shape (batch,)."""
    intersection, true_sum, pred_sum = _per_image_sums(y_true, y_pred)
    return (2.0 * intersection + smooth) / (true_sum + pred_sum + smooth)


def _binary_scores(y_true, y_pred, threshold):
    """Per-image (Jaccard, Dice) of the binarised prediction, with empty/empty = 1."""
    binary = ops.cast(ops.cast(y_pred, "float32") > threshold, "float32")
    truth = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
    intersection, true_sum, pred_sum = _per_image_sums(truth, binary)
    union = true_sum + pred_sum - intersection
    empty = ops.equal(union, 0.0)
    safe_union = ops.where(empty, 1.0, union)
    jaccard = ops.where(empty, 1.0, intersection / safe_union)
    total = true_sum + pred_sum
    dice = ops.where(empty, 1.0, 2.0 * intersection / ops.where(empty, 1.0, total))
    return jaccard, dice


@keras.saving.register_keras_serializable(package="skinkeras")
class DiceBCELoss(keras.losses.Loss):
    """`dice_weight * (1 - soft Dice) + bce_weight * mean pixel BCE`, per image.

    Example:
        >>> loss = DiceBCELoss()
        >>> float(loss(np.ones((1, 4, 4, 1)), np.full((1, 4, 4, 1), 0.999))) < 0.01
        True
    """

    def __init__(self, dice_weight: float = 1.0, bce_weight: float = 1.0, smooth: float = 1.0,
                 name: str = "dice_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        if dice_weight < 0 or bce_weight < 0 or dice_weight + bce_weight == 0:
            raise ValueError(
                f"dice_weight and bce_weight must be >= 0, not both 0. Received: dice_weight={dice_weight}, "
                f"bce_weight={bce_weight}"
            )
        self.dice_weight = float(dice_weight)
        self.bce_weight = float(bce_weight)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        loss = 0.0
        if self.dice_weight:
            loss = loss + self.dice_weight * (1.0 - soft_dice(y_true, y_pred, self.smooth))
        if self.bce_weight:
            bce = keras.losses.binary_crossentropy(y_true, y_pred)  # mean over the channel axis
            loss = loss + self.bce_weight * ops.mean(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=1)
        return loss

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "bce_weight": self.bce_weight,
                "smooth": self.smooth}


class _MeanPerImage(keras.metrics.Metric):
    def __init__(self, threshold: float = 0.5, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count", dtype="float32")

    def _scores(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = self._scores(y_true, y_pred)
        self.total.assign_add(ops.sum(scores))
        self.count.assign_add(ops.cast(ops.shape(scores)[0], "float32"))

    def result(self):
        return ops.where(self.count > 0, self.total / ops.maximum(self.count, 1.0), 0.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="skinkeras")
class MeanJaccard(_MeanPerImage):
    """Mean over images of the Jaccard index (IoU) at `threshold`; `cut` > 0 gives the ISIC
    thresholded Jaccard (per-image values below `cut` count as 0)."""

    def __init__(self, threshold: float = 0.5, cut: float = 0.0, name: str = "jaccard", **kwargs):
        super().__init__(threshold=threshold, name=name, **kwargs)
        self.cut = float(cut)

    def _scores(self, y_true, y_pred):
        jaccard, _ = _binary_scores(y_true, y_pred, self.threshold)
        if self.cut:
            jaccard = ops.where(jaccard < self.cut, 0.0, jaccard)
        return jaccard

    def get_config(self):
        return {**super().get_config(), "cut": self.cut}


@keras.saving.register_keras_serializable(package="skinkeras")
class MeanDice(_MeanPerImage):
    """Mean over images of the Dice coefficient at `threshold`."""

    def __init__(self, threshold: float = 0.5, name: str = "dice", **kwargs):
        super().__init__(threshold=threshold, name=name, **kwargs)

    def _scores(self, y_true, y_pred):
        return _binary_scores(y_true, y_pred, self.threshold)[1]


# ---- NumPy, for evaluation -------------------------------------------------------------------
def _as_batch(masks) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    return masks.reshape(masks.shape[0], -1).astype(bool)


def _counts(true_masks, pred_masks):
    truth, pred = _as_batch(true_masks), _as_batch(pred_masks)
    if truth.shape != pred.shape:
        raise ValueError(f"mask shapes differ. Received: {np.shape(true_masks)} and {np.shape(pred_masks)}")
    intersection = (truth & pred).sum(axis=1).astype(np.float64)
    return intersection, truth.sum(axis=1).astype(np.float64), pred.sum(axis=1).astype(np.float64)


def jaccard_per_image(true_masks, pred_masks) -> np.ndarray:
    """Jaccard of boolean masks `[N, H, W(, 1)]` (or one `[H, W]`) per image; empty/empty = 1."""
    intersection, true_sum, pred_sum = _counts(true_masks, pred_masks)
    union = true_sum + pred_sum - intersection
    return np.where(union == 0, 1.0, intersection / np.maximum(union, 1.0))


def dice_per_image(true_masks, pred_masks) -> np.ndarray:
    """Dice of boolean masks per image; empty/empty = 1."""
    intersection, true_sum, pred_sum = _counts(true_masks, pred_masks)
    total = true_sum + pred_sum
    return np.where(total == 0, 1.0, 2.0 * intersection / np.maximum(total, 1.0))


def thresholded_jaccard(jaccard, cut: float = ISIC_JACCARD_CUT) -> np.ndarray:
    """ISIC thresholded Jaccard: per-image values below `cut` become 0."""
    jaccard = np.asarray(jaccard, dtype=np.float64)
    return np.where(jaccard < cut, 0.0, jaccard)
