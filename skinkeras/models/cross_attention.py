"""Cross-attention gating between two feature paths (paper 000, "Dense-GRU CA").

"We use an FC layer with sigmoid activation to learn a weighting for the CNN features using the
EIS features and vice versa." Each path keeps its own output; the paper predicts with the maximum
of the two paths' outputs.

    a' = a * sigmoid(W_a b + c_a)      b' = b * sigmoid(W_b a + c_b)

Both gates read the *un-gated* features of the other path. Plain Keras layers only.
"""

from __future__ import annotations

from keras import layers


def cross_attention_gating(features_a, features_b, *, dtype=None, name: str = "cross_attention"):
    """Gates two feature vectors (B, Da) and (B, Db) by each other; returns (a', b').

    Example:
        >>> a, b = keras.Input((8,)), keras.Input((4,))
        >>> ga, gb = cross_attention_gating(a, b)
        >>> tuple(ga.shape), tuple(gb.shape)
        ((None, 8), (None, 4))
    """
    if len(features_a.shape) != 2 or len(features_b.shape) != 2:
        raise ValueError(
            "cross_attention_gating expects two (batch, features) vectors. "
            f"Received: shapes {tuple(features_a.shape)} and {tuple(features_b.shape)}"
        )
    width_a, width_b = int(features_a.shape[-1]), int(features_b.shape[-1])
    gate_a = layers.Dense(width_a, activation="sigmoid", dtype=dtype, name=f"{name}_gate_a")(features_b)
    gate_b = layers.Dense(width_b, activation="sigmoid", dtype=dtype, name=f"{name}_gate_b")(features_a)
    gated_a = layers.Multiply(dtype=dtype, name=f"{name}_apply_a")([features_a, gate_a])
    gated_b = layers.Multiply(dtype=dtype, name=f"{name}_apply_b")([features_b, gate_b])
    return gated_a, gated_b
