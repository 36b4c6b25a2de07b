"""Losses: class-weighted categorical cross-entropy with an optional focal term (papers 001, 003).

`WeightedCategoricalCrossentropy` is one registered, serialisable Keras loss covering
* plain categorical cross-entropy (no class weights, gamma = 0): paper 003's CEL;
* class-weighted cross-entropy: each sample's loss times the weight of its class, W . y, so with
  one-hot labels it equals Keras' `fit(class_weight=...)` (paper 001's "balanced" weights);
* focal loss -(1 - p)^gamma log p (Lin et al. 2017, paper 003's FL), optionally class-weighted
  (the per-class alpha of the focal-loss paper, or paper 003's CB / ES); gamma = 0 is exactly CEL.

Paper 003's SPL / OHEM wrap these: `skinkeras.training.selection.SelectedLoss`.

Reduction is Keras' "sum_over_batch_size": sum(w_i * loss_i) / batch size, NOT divided by the sum
of the weights (that is what `class_weight` in fit does too). Under a tf.distribute strategy each
replica divides by its own batch size and Keras' `Loss.__call__` scales by 1 / replicas, so the
gradient is that of the mean over the GLOBAL batch; nothing here depends on the replica count.

The arithmetic runs in float32 even under a mixed_float16 policy (Keras casts the inputs to the
loss dtype, float32 by default), and probabilities are normalised and clipped to [eps, 1 - eps] as
in `keras.losses.categorical_crossentropy`.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

LOSS_NAMES = ("cce", "categorical_crossentropy", "focal", "categorical_focal_crossentropy")


@keras.saving.register_keras_serializable(package="skinkeras")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with per-class weights and an optional focal term.

    Args:
        class_weights: one weight per class (index order), or None for all ones.
        gamma: focal exponent; 0 gives cross-entropy.
        from_logits: whether `y_pred` are logits rather than probabilities.
        label_smoothing: in [0, 1): targets become y (1 - s) + s / C. The class weight of a
            sample is taken from its unsmoothed label.
        reduction, name, dtype: as `keras.losses.Loss`.

    Example:
        >>> import numpy as np
        >>> loss = WeightedCategoricalCrossentropy(class_weights=[1.0, 3.0])
        >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> p = np.array([[0.5, 0.5], [0.5, 0.5]])
        >>> round(float(loss(y, p)), 4)  # (1 * ln 2 + 3 * ln 2) / 2
        1.3863
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        gamma: float = 0.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction="sum_over_batch_size",
        name: str = "weighted_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if class_weights is not None:
            class_weights = [float(w) for w in _as_list(class_weights)]
            if not class_weights or any(w < 0 for w in class_weights):
                raise ValueError(
                    f"class_weights must be a non-empty list of weights >= 0. "
                    f"Received: class_weights={class_weights}"
                )
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0. Received: gamma={gamma}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1). Received: {label_smoothing}")
        self.class_weights = class_weights
        self.gamma = float(gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        num_classes = y_pred.shape[-1]
        if self.class_weights is not None and num_classes is not None:
            if len(self.class_weights) != num_classes:
                raise ValueError(
                    f"class_weights has {len(self.class_weights)} entries but the model predicts "
                    f"{num_classes} classes. Received: class_weights={self.class_weights}"
                )
        targets = y_true
        if self.label_smoothing:
            targets = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(
                ops.shape(y_pred)[-1], y_pred.dtype
            )
        if self.from_logits:
            log_prob = ops.log_softmax(y_pred, axis=-1)
            prob = ops.exp(log_prob)
        else:
            epsilon = keras.config.epsilon()
            prob = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
            prob = ops.clip(prob, epsilon, 1.0 - epsilon)
            log_prob = ops.log(prob)
        per_class = -targets * log_prob
        if self.gamma:
            per_class = per_class * ops.power(1.0 - prob, self.gamma)
        loss = ops.sum(per_class, axis=-1)
        if self.class_weights is not None:
            weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
            loss = loss * ops.sum(y_true * weights, axis=-1)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            class_weights=self.class_weights,
            gamma=self.gamma,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
        )
        return config


def _as_list(values):
    if hasattr(values, "tolist"):
        return values.tolist()
    if isinstance(values, dict):
        return [values[k] for k in sorted(values)]
    return list(values)


def build_loss(
    name: str = "cce",
    *,
    class_weights: Sequence[float] | None = None,
    focal_gamma: float = 2.0,
    label_smoothing: float = 0.0,
    from_logits: bool = False,
) -> keras.losses.Loss:
    """The training loss named in a config ("cce" or "focal"), with optional class weights."""
    if name in ("cce", "categorical_crossentropy"):
        gamma = 0.0
    elif name in ("focal", "categorical_focal_crossentropy"):
        gamma = focal_gamma
    else:
        raise ValueError(f"Unknown loss {name!r}; valid names: {list(LOSS_NAMES)}")
    return WeightedCategoricalCrossentropy(
        class_weights=class_weights,
        gamma=gamma,
        from_logits=from_logits,
        label_smoothing=label_smoothing,
        name="focal_loss" if gamma else "categorical_crossentropy",
    )
