"""LocallyConnected1D, which Keras 3 removed; the ensemble head of paper 002 is built from it.

Like Conv1D with "valid" padding, but with separate (unshared) weights at every output position:

    out[b, t, f] = sum_{k, i} x[b, t*stride + k, i] * W[t, k*C_in + i, f] + bias[t, f]

The weight layout is tf_keras's `LocallyConnected1D(implementation=1)` (kernel
(output_length, kernel_size * input_dim, filters), bias (output_length, filters)), so weights copy
across unchanged. With kernel 1 this is `einsum("bti,tif->btf", x, W) + b[t]`.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="skinkeras")
class LocallyConnected1D(layers.Layer):
    """Unshared-weight 1D convolution, "valid" padding, channels last.

    Args:
        filters: output channels per position.
        kernel_size: window length (1 for the paper-002 ensemble head).
        strides: window step.
        activation, use_bias, kernel_initializer, bias_initializer: as in `keras.layers.Conv1D`.

    Example:
        >>> layer = LocallyConnected1D(filters=20, kernel_size=1)
        >>> tuple(layer(keras.ops.ones((2, 3, 5))).shape)
        (2, 3, 20)
        >>> layer.count_params()  # 3 positions * (5 * 20 + 20)
        360
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 1,
        strides: int = 1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("strides", strides)):
            if int(value) < 1:
                raise ValueError(f"{arg} must be a positive integer. Received: {arg}={value}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _output_length(self, input_length: int) -> int:
        return (input_length - self.kernel_size) // self.strides + 1

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "LocallyConnected1D needs a (batch, length, channels) input with known length and "
                f"channels. Received: input_shape={input_shape}"
            )
        length, channels = int(input_shape[1]), int(input_shape[2])
        if length < self.kernel_size:
            raise ValueError(
                f"Input length {length} is shorter than kernel_size={self.kernel_size}. "
                f"Received: input_shape={input_shape}"
            )
        self.input_length = length
        self.output_length = self._output_length(length)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.output_length, self.kernel_size * channels, self.filters),
            initializer=self.kernel_initializer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.output_length, self.filters), initializer=self.bias_initializer
            )
        else:
            self.bias = None

    def call(self, inputs):
        if self.kernel_size == 1 and self.strides == 1:
            patches = inputs
        else:
            # One flattened window per output position, (B, T_out, kernel_size * C).
            windows = [
                ops.reshape(
                    inputs[:, t * self.strides : t * self.strides + self.kernel_size, :],
                    (-1, self.kernel_size * int(inputs.shape[-1])),
                )
                for t in range(self.output_length)
            ]
            patches = ops.stack(windows, axis=1)
        outputs = ops.einsum("bti,tif->btf", patches, ops.cast(self.kernel, self.compute_dtype))
        if self.bias is not None:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._output_length(int(input_shape[1])), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
