"""CBAM: convolutional block attention module (Woo et al. 2018), the attention of paper 003.

Variant: the equations of the CBAM paper, channel attention first, then spatial attention:

    Mc = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))      MLP: Dense(C/r, relu) -> Dense(C), shared
    F' = Mc * F
    Ms = sigmoid(Conv2D(1, 7x7)([mean_c(F'); max_c(F')]))  no batch norm
    F''= Ms * F'

The public implementations differ: the authors' PyTorch code adds a BatchNorm after the 7x7 conv;
the popular Keras port uses ratio 8 and no bias. We follow the paper's equations with the paper's
ratio r = 16 (configurable) and biases in the MLP.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="skinkeras")
class CBAM(layers.Layer):
    """Channel then spatial attention on a (B, H, W, C) feature map; same shape out.

    Args:
        ratio: reduction of the shared channel MLP (C // ratio hidden units, at least 1).
        kernel_size: size of the spatial attention convolution (7 in the paper).

    Example:
        >>> tuple(CBAM(ratio=4)(keras.ops.ones((1, 6, 6, 16))).shape)
        (1, 6, 6, 16)
    """

    def __init__(self, ratio: int = 16, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        if int(ratio) < 1:
            raise ValueError(f"ratio must be a positive integer. Received: ratio={ratio}")
        if int(kernel_size) < 1:
            raise ValueError(
                f"kernel_size must be a positive integer. Received: kernel_size={kernel_size}"
            )
        self.ratio = int(ratio)
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"CBAM expects a (batch, height, width, channels) feature map with known channels. "
                f"Received: input_shape={input_shape}"
            )
        channels = int(input_shape[-1])
        hidden = max(1, channels // self.ratio)
        self.mlp_hidden = layers.Dense(hidden, activation="relu", dtype=self.dtype_policy, name="mlp_hidden")
        self.mlp_out = layers.Dense(channels, dtype=self.dtype_policy, name="mlp_out")
        self.spatial_conv = layers.Conv2D(
            1, self.kernel_size, padding="same", dtype=self.dtype_policy, name="spatial_conv"
        )
        self.mlp_hidden.build((None, channels))
        self.mlp_out.build((None, hidden))
        self.spatial_conv.build((None, None, None, 2))

    def call(self, inputs):
        channel_gate, spatial_gate = self.gates(inputs)
        return inputs * channel_gate * spatial_gate

    def gates(self, inputs):
        """The two attention maps of a built layer for `inputs`: Mc `(B, 1, 1, C)` and Ms
        `(B, H, W, 1)`, both in 0..1 (the layer's output is `inputs * Mc * Ms`). Heatmaps read Ms
        from here, so the map shown is the one the layer applies."""
        avg = ops.mean(inputs, axis=(1, 2))
        mx = ops.max(inputs, axis=(1, 2))
        channel_logits = self.mlp_out(self.mlp_hidden(avg)) + self.mlp_out(self.mlp_hidden(mx))
        channel_gate = ops.sigmoid(channel_logits)[:, None, None, :]
        refined = inputs * channel_gate
        pooled = ops.concatenate(
            [ops.mean(refined, axis=-1, keepdims=True), ops.max(refined, axis=-1, keepdims=True)],
            axis=-1,
        )
        spatial_gate = ops.sigmoid(self.spatial_conv(pooled))
        return channel_gate, spatial_gate

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "kernel_size": self.kernel_size}
