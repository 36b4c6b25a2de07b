"""Simulating TFLite's int8 rounding in a Keras graph: a clone of a model around the same layers
with a `FakeQuant` after every output that the int8 kernels round (graph surgery).

Every BatchNormalization (conv + BN are one op in TFLite), activation, Add / Multiply, pooling,
Dense and biased conv gets one, but not the output before a ReLU that TFLite fuses into the op
before it; the logits before the softmax are rounded; with `round_weights` the kernels are rounded
per tensor after BatchNorm folding. Training the clone trains the original model.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from skinkeras.errors import SkinkerasError
from skinkeras.quantization.fake_quant import (
    SPLIT_SUFFIXES,
    FakeQuant,
    uses_split_hard_swish,
)

_ROUNDED_OUTPUTS = (layers.BatchNormalization, layers.ReLU, layers.Activation, layers.Add, layers.Multiply,
                    layers.Rescaling, layers.GlobalAveragePooling2D, layers.AveragePooling2D, layers.Dense,
                    layers.Conv2D, layers.DepthwiseConv2D)


def _consumers(model) -> dict[str, list]:
    """Layer name -> the operations (layers and raw ops) that take its output, through nested
    functional models."""
    consumers: dict[str, list] = {}

    def walk(graph):
        for operation in graph.operations:  # layers and raw ops (`x + 3.0`)
            for node in operation._inbound_nodes:
                for parent in node.parent_nodes:
                    consumers.setdefault(parent.operation.name, []).append(operation)
            if isinstance(operation, keras.Model):
                walk(operation)

    walk(model)
    return consumers


def _is_relu(layer) -> bool:
    if isinstance(layer, layers.ReLU):
        return True
    return isinstance(layer, layers.Activation) and getattr(layer.activation, "__name__", "") in ("relu", "relu6")


def _is_hard_swish(layer) -> bool:
    name = getattr(getattr(layer, "activation", None), "__name__", "")
    return isinstance(layer, layers.Activation) and name in ("hard_swish", "hard_silu", "_unfused_hard_swish")


def _rounded_kernel(layer, batchnorm=None):
    """`layer.kernel` rounded as TFLite int8 stores it: symmetric, one scale per tensor, after the
    converter folds a following BatchNormalization into it (rounded folded, then unfolded here so
    the BatchNormalization still applies). Straight-through gradient."""
    kernel = layer.kernel
    if batchnorm is not None:
        factor = ops.rsqrt(batchnorm.moving_variance + batchnorm.epsilon)
        if batchnorm.scale:
            factor = factor * batchnorm.gamma
        if isinstance(layer, layers.DepthwiseConv2D):
            factor = ops.reshape(factor, kernel.shape[2:])
        factor = ops.where(ops.equal(factor, 0.0), 1.0, factor)  # gamma 0: a dead channel, nothing to fold
    else:
        factor = ops.ones((), dtype=kernel.dtype)
    folded = kernel * factor
    scale = ops.maximum(ops.max(ops.abs(folded)) / 127.0, 1e-12)
    rounded = ops.round(folded / scale) * scale / factor
    return kernel + ops.stop_gradient(rounded - kernel)


class _WithRoundedWeights(layers.Layer):
    """Calls a Conv2D / DepthwiseConv2D / Dense with its kernel rounded (`_rounded_kernel`); holds
    the layer, so its weights train. Never saved."""

    def __init__(self, layer, batchnorm=None, **kwargs):
        super().__init__(name=f"{layer.name}_rounded_weights", **kwargs)
        self.inner = layer
        self.batchnorm = batchnorm

    def call(self, x):
        layer = self.inner
        kernel = _rounded_kernel(layer, self.batchnorm)
        if isinstance(layer, layers.DepthwiseConv2D):
            y = ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                                   dilation_rate=layer.dilation_rate, data_format=layer.data_format)
        elif isinstance(layer, layers.Conv2D):
            y = layer.convolution_op(x, kernel)
        else:
            y = ops.matmul(x, kernel)
        if layer.use_bias:
            y = y + layer.bias  # channels_last (the only layout the classifiers use)
        return layer.activation(y) if layer.activation is not None else y

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


def _is_softmax_dense(layer) -> bool:
    return isinstance(layer, layers.Dense) and getattr(layer.activation, "__name__", "") == "softmax"


class _SoftmaxOfRoundedLogits(layers.Layer):
    """`softmax(round(x W + b))`: a softmax Dense with its logits rounded, as TFLite int8 rounds the
    FULLY_CONNECTED output before SOFTMAX. Holds the Dense, so its weights train; never saved."""

    def __init__(self, dense, fake_quant, round_weights=False, **kwargs):
        super().__init__(name=f"{dense.name}_rounded_logits", **kwargs)
        self.dense = dense
        self.fake_quant = fake_quant
        self.round_weights = round_weights

    def call(self, x, training=False):
        logits = ops.matmul(x, _rounded_kernel(self.dense) if self.round_weights else self.dense.kernel)
        if self.dense.use_bias:
            logits = logits + self.dense.bias
        return ops.softmax(self.fake_quant(logits, training=training), axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dense.units)


def _rounds_output(layer, consumers) -> bool:
    """Whether TFLite int8 rounds this layer's output to its own int8 tensor."""
    if isinstance(layer, keras.Model):
        return False
    custom = type(layer).__module__.startswith("skinkeras")  # attention blocks etc.: their output tensor
    if not (custom or isinstance(layer, _ROUNDED_OUTPUTS)):
        return False  # Flatten, Reshape, Dropout, Concatenate...: no new rounding
    if isinstance(layer, FakeQuant):
        return False
    if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)) and not layer.use_bias:
        return False  # followed by BatchNormalization, folded into this conv by the converter
    if _is_softmax_dense(layer):
        return False  # its logits are rounded instead (`_SoftmaxOfRoundedLogits`)
    after = consumers.get(layer.name, [])
    if after and all(_is_relu(c) for c in after) and not _is_relu(layer):
        return False  # the converter fuses the ReLU into this op: one rounding, after the ReLU
    if (after and getattr(layer, "use_bias", False) and isinstance(layer, (layers.Conv2D, layers.Dense))
            and not any(isinstance(c, layers.Layer) for c in after)):
        return False  # `conv(x) + 3` (hard sigmoid): the converter folds the constant into the bias
    return True


def with_fake_quant(model, *, momentum: float = 0.99, num_bits: int = 8, ranges: dict | None = None,
                    split_hard_swish: bool = False, round_weights: bool = False):
    """`(clone, fake_quants)`: the model's graph with a `FakeQuant` after every int8-rounded
    output (see the module docstring), built from the same layer objects: training the clone
    trains `model`.

    `ranges` (`{fake_quant_name: [min, max]}`, as `fake_quant_ranges` returns): only those outputs
    get a `FakeQuant`, with that fixed range (how an export carries a fine-tuning's ranges into
    the TFLite converter). `split_hard_swish`: hard swish as the int8 export with
    `--int8-split-hard-swish` computes it, `(x / 6) * relu6(x + 3)`, each of the three rounded.
    `round_weights`: conv / dense kernels rounded as the int8 export stores them
    (`_rounded_kernel`; the softmax Dense's kernel is rounded whenever its logits are).
    """
    consumers = _consumers(model)
    fake_quants = []

    def new_fake_quant(name):
        if ranges is not None and name not in ranges:
            return None
        fake_quant = FakeQuant(momentum=momentum, num_bits=num_bits, name=name)
        fake_quants.append(fake_quant)
        return fake_quant

    def call_function(layer, *args, **kwargs):
        if split_hard_swish and _is_hard_swish(layer) and not kwargs and len(args) == 1:
            # Named layers, not raw ops: op names must be unique in the (nested) clone.
            x = args[0]
            parts = []
            over_6 = layers.Rescaling(1.0 / 6.0, name=f"{layer.name}{SPLIT_SUFFIXES[0]}")(x)
            plus_3 = layers.Rescaling(1.0, offset=3.0, name=f"{layer.name}_x_plus_3")(x)
            relu6 = layers.ReLU(6.0, name=f"{layer.name}{SPLIT_SUFFIXES[1]}")(plus_3)
            for suffix, value in zip(SPLIT_SUFFIXES, (over_6, relu6)):
                fake_quant = new_fake_quant(f"{layer.name}_fake_quant{suffix}")
                parts.append(fake_quant(value) if fake_quant else value)
            product = layers.Multiply(name=f"{layer.name}_product")(parts)
            fake_quant = new_fake_quant(f"{layer.name}_fake_quant")
            return fake_quant(product) if fake_quant else product
        if _is_softmax_dense(layer) and not kwargs and len(args) == 1:
            fake_quant = new_fake_quant(f"{layer.name}_fake_quant")
            if fake_quant is None:
                return layer(*args)
            return _SoftmaxOfRoundedLogits(layer, fake_quant, round_weights)(*args)
        if (round_weights and not kwargs and len(args) == 1 and not isinstance(layer, keras.Model)
                and isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense))
                and getattr(layer, "data_format", "channels_last") == "channels_last"):
            after = consumers.get(layer.name, [])
            batchnorm = after[0] if len(after) == 1 and isinstance(after[0], layers.BatchNormalization) else None
            outputs = _WithRoundedWeights(layer, batchnorm)(args[0])
        else:
            outputs = layer(*args, **kwargs)
        if not _rounds_output(layer, consumers) or not hasattr(outputs, "shape"):
            return outputs
        fake_quant = new_fake_quant(f"{layer.name}_fake_quant")
        return fake_quant(outputs) if fake_quant else outputs

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call_function,
                                     recursive=True)
    for fake_quant in fake_quants if ranges is not None else ():
        low, high = ranges[fake_quant.name]
        fake_quant.range_min.assign(float(low))
        fake_quant.range_max.assign(float(high))
        fake_quant.observed.assign(1.0)
    if not fake_quants:
        raise SkinkerasError(f"{model.name}: found no int8-rounded outputs to simulate")
    return clone, fake_quants


def fake_quant_inputs(model, ranges: dict, inputs) -> dict:
    """`{fake_quant_name: float32 array}`: what each of `ranges`' roundings would round, for one
    batch of `inputs` through `model` (no rounding applied). Used to find, by value, the tensor
    of a converted model that each range belongs to."""
    import numpy as np

    graph, fake_quants = with_fake_quant(model, ranges=ranges, split_hard_swish=uses_split_hard_swish(ranges))
    seen = {}
    for fake_quant in fake_quants:
        def record(x, training=False, _name=fake_quant.name):
            seen[_name] = np.asarray(x, dtype="float32")
            return x

        fake_quant.call = record  # this throwaway clone only: identity, remembering its input
    graph(inputs, training=False)
    return seen


def freeze_batchnorm(model) -> int:
    """Puts every BatchNormalization in inference mode for good (trainable=False); returns how many."""
    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
            count += 1
    return count
