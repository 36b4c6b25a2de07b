"""Soft attention (paper 001, after Datta et al. 2021) and the "SA module" around it.

The layer implements the intended math (see ../shared/docs/REFERENCES.md), not the public Keras
reference's Conv3D, whose kernel axis runs along the image height instead of the channels:

    logits = relu(Conv2D(K, 3x3, "same")(t))            # (B, H, W, K); 9*C*K + K weights
    alpha  = softmax of each head over the H*W positions
    A      = sum of alpha over the heads                 # (B, H, W, 1); sums to K over H*W
    f_sa   = gamma * A * t

`gamma` is a learnable scalar (paper init 0.01); `gamma_init=None` drops it (gamma == 1), which is
what the reference code does and what its published parameter counts assume.
"""

from __future__ import annotations

import keras
from keras import layers, ops

# Suffixes of the soft-attention module's layer names after its `name` (the int8 export finds the
# two pooled maps of the concatenation by them: `skinkeras.export.tflite`).
POOL_FEATURES, POOL_ATTENDED, CONCAT, FLATTEN = "_pool_features", "_pool_attended", "_concat", "_flatten"


@keras.saving.register_keras_serializable(package="skinkeras")
class SoftAttention(layers.Layer):
    """Soft attention over the spatial positions of a feature map.

    Args:
        num_heads: number of attention maps K (16 in paper 001).
        kernel_size: size of the square convolution producing the logits.
        gamma_init: initial value of the learnable scale gamma, or None for a fixed gamma of 1
            (the reference code; no extra weight).
        return_attention: also return the summed attention map A, shape (B, H, W, 1).

    The softmax runs in float32 under mixed precision (a sum over H*W exponentials overflows in
    float16); the output has the layer's compute dtype.

    Example:
        >>> layer = SoftAttention(num_heads=4)
        >>> tuple(layer(keras.ops.ones((2, 5, 5, 8))).shape)
        (2, 5, 5, 8)
    """

    def __init__(
        self,
        num_heads: int = 16,
        kernel_size: int = 3,
        gamma_init: float | None = 0.01,
        return_attention: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_heads) < 1:
            raise ValueError(f"num_heads must be a positive integer. Received: num_heads={num_heads}")
        if int(kernel_size) < 1:
            raise ValueError(
                f"kernel_size must be a positive integer. Received: kernel_size={kernel_size}"
            )
        self.num_heads = int(num_heads)
        self.kernel_size = int(kernel_size)
        self.gamma_init = None if gamma_init is None else float(gamma_init)
        self.return_attention = bool(return_attention)
        self.conv = layers.Conv2D(
            self.num_heads,
            self.kernel_size,
            padding="same",
            activation="relu",
            dtype=self.dtype_policy,
            name="logits",
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"SoftAttention expects a (batch, height, width, channels) feature map. "
                f"Received: input_shape={input_shape}"
            )
        self.conv.build(input_shape)
        if self.gamma_init is not None:
            self.gamma = self.add_weight(
                name="gamma",
                shape=(),
                initializer=keras.initializers.Constant(self.gamma_init),
                trainable=True,
            )
        else:
            self.gamma = None

    def call(self, inputs):
        logits = self.conv(inputs)  # (B, H, W, K)
        shape = ops.shape(logits)
        flat = ops.reshape(ops.cast(logits, "float32"), (shape[0], -1, self.num_heads))
        alpha = ops.softmax(flat, axis=1)  # over positions, separately per head
        attention = ops.reshape(ops.sum(alpha, axis=-1), (shape[0], shape[1], shape[2], 1))
        attention = ops.cast(attention, self.compute_dtype)
        outputs = attention * inputs
        if self.gamma is not None:
            outputs = ops.cast(self.gamma, self.compute_dtype) * outputs
        if self.return_attention:
            return outputs, attention
        return outputs

    def compute_output_shape(self, input_shape):
        if self.return_attention:
            return tuple(input_shape), (*tuple(input_shape)[:3], 1)
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "kernel_size": self.kernel_size,
            "gamma_init": self.gamma_init,
            "return_attention": self.return_attention,
        }


def soft_attention_module(
    features,
    *,
    num_heads: int = 16,
    gamma_init: float | None = 0.01,
    dropout: float = 0.5,
    dtype=None,
    name: str = "sa",
):
    """The SA module of papers 001 / Datta et al. on a feature map; returns a flat vector.

    `MaxPool2D(2, "same")(t)` and `MaxPool2D(2, "same")(SoftAttention(t))` -> Concatenate ->
    ReLU -> Dropout -> Flatten. The caller concatenates metadata features and adds the classifier.
    """
    attended = SoftAttention(
        num_heads=num_heads, gamma_init=gamma_init, dtype=dtype, name=f"{name}_soft_attention"
    )(features)
    pooled_features = layers.MaxPooling2D(2, padding="same", dtype=dtype, name=name + POOL_FEATURES)(
        features
    )
    pooled_attended = layers.MaxPooling2D(2, padding="same", dtype=dtype, name=name + POOL_ATTENDED)(
        attended
    )
    x = layers.Concatenate(dtype=dtype, name=name + CONCAT)([pooled_features, pooled_attended])
    x = layers.ReLU(dtype=dtype, name=f"{name}_relu")(x)
    x = layers.Dropout(dropout, dtype=dtype, name=f"{name}_dropout")(x)
    return layers.Flatten(dtype=dtype, name=name + FLATTEN)(x)
