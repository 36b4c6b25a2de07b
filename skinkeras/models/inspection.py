"""Model figures reported by `skinkeras models params` and `skinkeras bench models`.

Depth as the keras.applications documentation counts it: the number of layers that have weights
(convolutions, batch norms, dense layers...; a nested model counts with its own layers). With
their tops, ResNet50 gives 107 (53 conv + 53 BN + 1 dense), VGG16 16, DenseNet121 242,
InceptionV3 189, matching the documentation table.
"""

from __future__ import annotations

import keras
import numpy as np


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and non-trainable parameter counts."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    total = int(model.count_params())
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def weighted_depth(model: keras.Model) -> int:
    """Number of layers with weights, counted inside nested models (keras.io "Depth")."""
    depth = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            depth += weighted_depth(layer)
        elif layer.weights:
            depth += 1
    return depth
