"""The `FakeQuant` layer (int8 rounding where TFLite rounds, trainable through) and the ranges file
a quantization-aware fine-tuned run keeps for its int8 export (`int8_ranges.json`).

See `skinkeras.systems.classification.finetune_int8` for why and what was measured.
"""

from __future__ import annotations

import json

import keras
from keras import layers, ops

from skinkeras.errors import SkinkerasError

RUN_INFO_KEY = "quantization_aware"
SPLIT_SUFFIXES = ("_x_over_6", "_relu6_x_plus_3")  # the roundings inside a split hard swish


@keras.saving.register_keras_serializable(package="skinkeras")
class FakeQuant(layers.Layer):
    """Rounds its input to the 256 levels of an asymmetric int8 tensor, as TFLite does.

    The range is a moving average of the batch minimum / maximum (updated in training, fixed in
    inference), widened to include zero; the levels are `(q - zero_point) * scale` with an integer
    zero point, so zero is exact (padding, ReLU zeros). The gradient passes straight through.
    Until the first training batch the range is empty and the layer is the identity.
    """

    def __init__(self, momentum: float = 0.99, num_bits: int = 8, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1). Received: {momentum}")
        if not 2 <= num_bits <= 8:
            raise ValueError(f"num_bits must be in 2..8. Received: {num_bits}")
        self.momentum = momentum
        self.num_bits = num_bits

    def build(self, input_shape):
        self.range_min = self.add_weight(shape=(), initializer="zeros", trainable=False, name="range_min")
        self.range_max = self.add_weight(shape=(), initializer="zeros", trainable=False, name="range_max")
        self.observed = self.add_weight(shape=(), initializer="zeros", trainable=False, name="observed")

    def call(self, x, training=False):
        import tensorflow as tf

        x32 = ops.cast(x, "float32")
        if training:
            batch_min, batch_max = ops.min(x32), ops.max(x32)
            first = ops.equal(self.observed, 0.0)
            m = self.momentum
            self.range_min.assign(ops.where(first, batch_min, m * self.range_min + (1.0 - m) * batch_min))
            self.range_max.assign(ops.where(first, batch_max, m * self.range_max + (1.0 - m) * batch_max))
            self.observed.assign(1.0)
        low = ops.minimum(self.range_min, 0.0)
        high = ops.maximum(self.range_max, 0.0)
        # TensorFlow's op: TFLite's nudged int8 grid, gradient straight through inside the range
        # (zero outside), and the TFLite converter reads its range as the tensor's quantization.
        rounded = tf.quantization.fake_quant_with_min_max_vars(x32, low, high, num_bits=self.num_bits,
                                                               narrow_range=False)
        rounded = ops.where(high - low > 0.0, rounded, x32)  # no range observed yet: identity
        return ops.cast(rounded, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "num_bits": self.num_bits}


def fake_quant_ranges(fake_quants) -> dict[str, list[float]]:
    """`{name: [min, max]}` of the fake quants that have observed a range."""
    return {fq.name: [float(fq.range_min.numpy()), float(fq.range_max.numpy())]
            for fq in fake_quants if float(fq.observed.numpy()) > 0}


def uses_split_hard_swish(ranges: dict | None) -> bool:
    """Whether `ranges` come from a fine-tuning with `split_hard_swish=True`."""
    return bool(ranges) and any(name.endswith(SPLIT_SUFFIXES[1]) for name in ranges)


def load_fake_quant_ranges(run_dir) -> dict | None:
    """The ranges a quantization-aware run was fine-tuned with (`RunDirectory.int8_ranges`), or None."""
    from skinkeras.engine.run_directory import as_run

    path = as_run(run_dir).int8_ranges
    if not path.exists():
        return None
    ranges = json.loads(path.read_text())
    if not isinstance(ranges, dict) or not all(isinstance(v, list) and len(v) == 2 for v in ranges.values()):
        raise SkinkerasError(f"{path} is not a {{name: [min, max]}} table of int8 ranges")
    return ranges
