"""The ensemble head of paper 002: 423 parameters that combine five classifiers' softmax outputs.

The five (B, 3) probability vectors are stacked per class as (B, 3 classes, 5 models); two
locally connected layers with kernel 1 give each class its own weights, so one class's output
depends only on the five models' scores for that class; a softmax over the classes follows:

    LocallyConnected1D(20, 1) -> LocallyConnected1D(1, 1) -> softmax over the 3 classes
    3 * (5 * 20 + 20) + 3 * (20 * 1 + 1) = 360 + 63 = 423

The paper names no activation between the two layers; we use none (a linear stack), which keeps
the parameter count and is a choice, documented here.
"""

from __future__ import annotations

import keras
from keras import layers

from skinkeras.models.locally_connected import LocallyConnected1D


def ensemble_head(
    probabilities,
    *,
    hidden_units: int = 20,
    hidden_activation=None,
    dtype=None,
    name: str = "ensemble",
):
    """Combines a list of (B, C) probability tensors (one per model) into (B, C) probabilities."""
    if len(probabilities) < 1:
        raise ValueError(f"ensemble_head needs at least one model output. Received: {probabilities}")
    num_classes = int(probabilities[0].shape[-1])
    columns = [
        layers.Reshape((num_classes, 1), dtype=dtype, name=f"{name}_column{i}")(p)
        for i, p in enumerate(probabilities)
    ]
    stacked = (
        columns[0]
        if len(columns) == 1
        else layers.Concatenate(axis=-1, dtype=dtype, name=f"{name}_stack")(columns)
    )  # (B, classes, models)
    x = LocallyConnected1D(
        hidden_units, 1, activation=hidden_activation, dtype=dtype, name=f"{name}_lc1"
    )(stacked)
    x = LocallyConnected1D(1, 1, dtype=dtype, name=f"{name}_lc2")(x)
    x = layers.Flatten(dtype=dtype, name=f"{name}_flatten")(x)
    return layers.Activation("softmax", dtype="float32", name=f"{name}_softmax")(x)


def build_ensemble_head(
    num_models: int = 5, num_classes: int = 3, *, hidden_units: int = 20, dtype=None
) -> keras.Model:
    """A model taking `{"model_0": (B, C), ...}` probabilities; 423 parameters by default.

    Example:
        >>> build_ensemble_head().count_params()
        423
    """
    if num_models < 1 or num_classes < 1:
        raise ValueError(
            f"num_models and num_classes must be positive. Received: num_models={num_models}, "
            f"num_classes={num_classes}"
        )
    inputs = {f"model_{i}": keras.Input((num_classes,), name=f"model_{i}") for i in range(num_models)}
    outputs = ensemble_head(list(inputs.values()), hidden_units=hidden_units, dtype=dtype)
    return keras.Model(inputs, outputs, name="ensemble_head")
