"""The models of a paper-003 row and the hierarchical model's training loss.

Flat rows: `build_flat_cbam` (backbone -> CBAM -> GAP -> dropout -> softmax), trained on one-hot
labels with `training.objectives.classification_loss` (CEL / FL, CB / ES class weights, SPL / OHEM).

Hierarchical rows: `build_hierarchical` (per-level CBAM, an LSTM over the levels, one softmax per
taxonomy node, "probabilities" the products along each class's path). It trains through a wrapper
whose single output is the heads' softmaxes concatenated in head order, against the concatenated
per-head targets of `Taxonomy.targets` (`data.hierarchy_targets`), with `HierarchyLoss`: per sample,
the sum over the heads of -(1 - p)^gamma y log p, i.e. the sum over the levels of the sample's path
of its correct child's (focal) cross-entropy: the paper's eq. 10. This is `hierarchical_losses()`
plus `Taxonomy.targets`' head weights, added up per sample instead of per head, so that SPL / OHEM
(`SelectedLoss` around it) rank samples by their whole hierarchical loss: ranking head by head
would count every sample off a head's path (loss 0 there) as the easiest. CB / ES: the class weight
of the sample's class as its sample weight (`data.training_stream`). The saved model is the
hierarchical model itself; `inference_model` gives its 7-class probabilities.
"""

from __future__ import annotations

import keras
from keras import ops

_EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="skinkeras")
class HierarchyLoss(keras.losses.Loss):
    """Paper 003's eq. 10 on concatenated head softmaxes: per sample, sum of -(1 - p)^gamma y log p
    over every head's children (targets zero off the sample's path); gamma 0 is cross-entropy.

    Args:
        gamma: focal exponent (0: CEL).

    Example:
        >>> import numpy as np
        >>> loss = HierarchyLoss(reduction=None)
        >>> y = np.array([[1.0, 0.0, 0.0, 1.0]])  # head 1: child 0, head 2: child 1
        >>> p = np.array([[0.5, 0.5, 0.5, 0.5]])
        >>> round(float(loss(y, p)[0]), 4)  # 2 ln 2
        1.3863
    """

    def __init__(self, gamma: float = 0.0, reduction="sum_over_batch_size", name: str = "hierarchy_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0. Received: gamma={gamma}")
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        y_pred = ops.clip(ops.cast(y_pred, "float32"), _EPSILON, 1.0 - _EPSILON)
        y_true = ops.cast(y_true, "float32")
        terms = -y_true * ops.log(y_pred)
        if self.gamma:
            terms = terms * ops.power(1.0 - y_pred, self.gamma)
        return ops.sum(terms, axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


def build_row_model(row, config, taxonomy, num_classes: int, dtype=None):
    """(the row's model, the model to train, the probabilities model) for a flat or hierarchical row."""
    from skinkeras.models.hierarchical import build_flat_cbam, build_hierarchical, inference_model
    from skinkeras.systems.classification.model import set_batchnorm_momentum

    w = config.weighting
    common = dict(image_size=config.data.image_size, weights=config.model.weights or None, cbam_ratio=w.cbam_ratio,
                  dropout=w.dropout, dtype=dtype)
    if row.model == "flat":
        model = build_flat_cbam(config.model.backbone, num_classes, **common)
        set_batchnorm_momentum(model, config)
        return model, model, model
    model = build_hierarchical(config.model.backbone, taxonomy, lstm_units=w.lstm_units, **common)
    set_batchnorm_momentum(model, config)
    heads = keras.layers.Concatenate(axis=-1, dtype="float32", name="heads")(
        [model.output[name] for name in taxonomy.head_names])
    return model, keras.Model(model.input, heads, name=f"{model.name}_training"), inference_model(model)


def row_loss(row, train_config, counts, class_names):
    """The loss a row's training model compiles with (module docstring)."""
    from skinkeras.training.objectives import classification_loss

    if row.model == "flat":
        return classification_loss(train_config, counts, class_names)
    gamma = train_config.focal_gamma if row.loss == "focal" else 0.0
    base = HierarchyLoss(gamma=gamma)
    if row.sample_selection == "none":
        return base
    from skinkeras.training.selection import SelectedLoss

    return SelectedLoss(base, mode=row.sample_selection, epochs=train_config.epochs,
                        alpha=train_config.selection_alpha)
