"""Registered layers of paper 000's EIS models (Gessert et al., "Skin lesion classification using
electrical impedance spectroscopy and dermoscopy", section 2 and Figure 3).

A lesion's measurements arrive as a zero-padded sequence `eis` (B, T, 700) with `eis_mask` (B, T),
1.0 for a real measurement and 0.0 for padding (padding may sit anywhere: a row is padding iff its
mask is <= 0.5). Every layer here reads the mask so that padding changes no output:

- `MeasurementMask`: the float mask -> booleans, for the GRU's `mask=`.
- `MaskedStatePooling`: the GRU's state sequence (B, T, U) -> (B, U) by the last real state, the
  masked mean ("state-mean-pool") or the masked max ("state-max-pool", the paper's model).
- `MaskedMalignancyMax`: per-measurement probabilities (B, T, 2) -> [1 - m, m] with m the max over
  the real measurements of p(malignant) (the FC-NN's and SVM's lesion rule).
- `MaxMalignancy`: several (B, 2) probability outputs -> [1 - m, m] with m the max of their
  p(malignant) (the CA model's prediction, like the max ensembles).
- `MergeMeasurements` / `SplitMeasurements`: (B, T, F) <-> (B*T, F), so that per-measurement layers
  (BatchNormalization fixes its input rank when built) run on every measurement of a lesion.

A lesion with no real measurement (an all-padding row) pools to zeros and gets m = 0.
"""

from __future__ import annotations

import keras
from keras import layers, ops

POOLING_MODES = ("last", "mean", "max")

# Fill of padded states before the max: large and finite (-inf would turn 0 * fill into NaN in the
# gradient of the all-padding guard). The max runs in float32, where -1e9 is representable.
_MAX_FILL = -1e9


def _real(mask):
    """(B, T) boolean: which steps are real measurements."""
    return ops.greater(ops.cast(mask, "float32"), 0.5)


def masked_max(values, mask):
    """Max of `values` (B, T, U) over the real steps of `mask` (B, T), in float32; zeros where a row
    has no real step."""
    real = _real(mask)
    values = ops.cast(values, "float32")
    filled = ops.where(real[..., None], values, ops.full_like(values, _MAX_FILL))
    pooled = ops.max(filled, axis=1)
    any_real = ops.any(real, axis=1, keepdims=True)
    return ops.where(any_real, pooled, ops.zeros_like(pooled))


def masked_mean(values, mask):
    """Mean of `values` (B, T, U) over the real steps (float32); zeros for an all-padding row."""
    weights = ops.cast(_real(mask), "float32")[..., None]
    total = ops.sum(ops.cast(values, "float32") * weights, axis=1)
    count = ops.maximum(ops.sum(weights, axis=1), 1.0)
    return total / count


def masked_last(values, mask):
    """The row of `values` (B, T, U) at the highest-index real step; zeros for an all-padding row."""
    real = _real(mask)
    steps = ops.shape(values)[1]
    positions = ops.cast(ops.arange(steps), "int32")[None, :]
    # Real steps keep their index, padding gets -1; the argmax is the last real step (0 if none).
    scored = ops.where(real, positions, -1)
    last = ops.argmax(scored, axis=1)
    one_hot = ops.one_hot(last, steps, dtype="float32") * ops.cast(real, "float32")
    return ops.sum(ops.cast(values, "float32") * one_hot[..., None], axis=1)


@keras.saving.register_keras_serializable(package="skinkeras")
class MeasurementMask(layers.Layer):
    """`eis_mask` (B, T) floats -> (B, T) booleans (> 0.5: a real measurement), the `mask=` of an RNN.

    Example:
        >>> MeasurementMask()(keras.ops.convert_to_tensor([[1.0, 0.0]])).numpy().tolist()
        [[True, False]]
    """

    def call(self, inputs):
        return _real(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="skinkeras")
class MaskedStatePooling(layers.Layer):
    """Pools a padded state sequence over its real steps (paper 000, "state-max-pooling").

    Args:
        mode: "last" (the state at the highest-index real step: with a masked GRU, the state after
            the last real measurement), "mean" (masked mean) or "max" (masked max per unit, the
            paper's state-max-pooling).

    Call with `[states, mask]`: states (B, T, U), mask (B, T) with 1.0 for real steps and 0.0 for
    padding (any float; > 0.5 is real). Returns (B, U) in the layer's compute dtype; the pooling
    itself runs in float32. A row with no real step gives zeros. Padding changes no output, and
    "mean" / "max" are invariant to permuting the steps.

    Example:
        >>> states = keras.ops.convert_to_tensor([[[1.0], [3.0], [9.0]]])
        >>> mask = keras.ops.convert_to_tensor([[1.0, 1.0, 0.0]])
        >>> [float(MaskedStatePooling(m)([states, mask])[0, 0]) for m in ("last", "mean", "max")]
        [3.0, 2.0, 3.0]
    """

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLING_MODES:
            raise ValueError(f"mode must be one of {POOLING_MODES}. Received: mode={mode!r}")
        self.mode = mode
        # The GRU's states carry its Keras mask; the pooling consumes it (read from `mask` in the
        # inputs) and passes none on.
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, inputs):
        states, mask = inputs
        pool = {"last": masked_last, "mean": masked_mean, "max": masked_max}[self.mode]
        return ops.cast(pool(states, mask), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        states_shape, _ = input_shape
        return (states_shape[0], states_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _binary(malignant):
    """(B, 1) p(malignant) -> (B, 2) [1 - p, p]."""
    return ops.concatenate([1.0 - malignant, malignant], axis=-1)


@keras.saving.register_keras_serializable(package="skinkeras")
class MaskedMalignancyMax(layers.Layer):
    """A lesion's probabilities from its measurements' (paper 000's FC-NN / SVM rule): m = max over
    the real measurements of p(malignant), output [1 - m, m].

    Call with `[probabilities, mask]`: probabilities (B, T, 2) (benign, malignant), mask (B, T).
    Returns (B, 2), computed in float32 (build it with dtype="float32" to keep it float32 under
    mixed precision). A lesion with no real measurement gets m = 0.

    Example:
        >>> probs = keras.ops.convert_to_tensor([[[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]]])
        >>> mask = keras.ops.convert_to_tensor([[1.0, 1.0, 0.0]])
        >>> [round(float(v), 3) for v in MaskedMalignancyMax()([probs, mask])[0]]
        [0.6, 0.4]
    """

    def call(self, inputs):
        probabilities, mask = inputs
        malignant = masked_max(ops.cast(probabilities, "float32")[..., 1:2], mask)
        return ops.cast(_binary(malignant), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 2)


@keras.saving.register_keras_serializable(package="skinkeras")
class MaxMalignancy(layers.Layer):
    """Combines several (B, 2) probability outputs by the max of their p(malignant) (paper 000: the
    CA model's prediction and the max ensembles), output [1 - m, m] computed in float32.

    Example:
        >>> a = keras.ops.convert_to_tensor([[0.7, 0.3]])
        >>> b = keras.ops.convert_to_tensor([[0.2, 0.8]])
        >>> [round(float(v), 3) for v in MaxMalignancy()([a, b])[0]]
        [0.2, 0.8]
    """

    def call(self, inputs):
        malignant = ops.stack([ops.cast(p, "float32")[:, 1] for p in inputs], axis=-1)
        return ops.cast(_binary(ops.max(malignant, axis=-1, keepdims=True)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 2)


@keras.saving.register_keras_serializable(package="skinkeras")
class MergeMeasurements(layers.Layer):
    """(B, T, F) -> (B * T, F): every measurement becomes a batch row.

    Example:
        >>> tuple(MergeMeasurements()(keras.ops.ones((2, 3, 5))).shape)
        (6, 5)
    """

    def call(self, inputs):
        return ops.reshape(inputs, (-1, ops.shape(inputs)[-1]))

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        rows = None if batch is None or steps is None else batch * steps
        return (rows, input_shape[-1])


@keras.saving.register_keras_serializable(package="skinkeras")
class SplitMeasurements(layers.Layer):
    """(B * T, F) -> (B, T, F), the inverse of `MergeMeasurements`; B and T are read from a
    reference tensor (B, T, ...), so a variable T works.

    Call with `[rows, reference]`.

    Example:
        >>> tuple(SplitMeasurements()([keras.ops.ones((6, 2)), keras.ops.ones((2, 3, 5))]).shape)
        (2, 3, 2)
    """

    def call(self, inputs):
        rows, reference = inputs
        shape = ops.shape(reference)
        return ops.reshape(rows, (shape[0], shape[1], ops.shape(rows)[-1]))

    def compute_output_shape(self, input_shape):
        rows_shape, reference_shape = input_shape
        return (reference_shape[0], reference_shape[1], rows_shape[-1])
