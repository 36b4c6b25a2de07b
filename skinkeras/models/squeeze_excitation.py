"""Squeeze-and-excitation (Hu et al. 2018), as used on the final feature map in paper 002 and in
every block of SE-ResNeXt (paper 000).

    z = GAP(u);  s = sigmoid(W2 relu(W1 z));  out = s * u

Built from plain Keras layers (like keras `efficientnet.py`), so it serializes and converts to
TFLite builtins with no custom layer. Paper 002 does not give the ratio; SENet uses 16.
"""

from __future__ import annotations

from keras import layers


def squeeze_excite(inputs, *, ratio: int = 16, min_units: int = 1, dtype=None, name: str = "se"):
    """Returns `inputs` (B, H, W, C) re-weighted channel-wise by an SE gate.

    Args:
        ratio: channel reduction of the bottleneck, C // ratio units (at least `min_units`).
        name: prefix of the created layers (`{name}_squeeze`, `{name}_reduce`, ...).

    Example:
        >>> x = keras.Input((7, 7, 64))
        >>> tuple(squeeze_excite(x, ratio=16).shape)
        (None, 7, 7, 64)
    """
    if int(ratio) < 1:
        raise ValueError(f"ratio must be a positive integer. Received: ratio={ratio}")
    channels = int(inputs.shape[-1])
    units = max(int(min_units), channels // int(ratio))
    s = layers.GlobalAveragePooling2D(keepdims=True, dtype=dtype, name=f"{name}_squeeze")(inputs)
    s = layers.Dense(units, activation="relu", dtype=dtype, name=f"{name}_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", dtype=dtype, name=f"{name}_expand")(s)
    return layers.Multiply(dtype=dtype, name=f"{name}_excite")([inputs, s])
