"""Model builders of paper 000 (Gessert et al., EIS + dermoscopy; section 2 and Figure 3).

Every builder returns `EISModels(train, infer)`; `train is infer` except for the FC-NN (trained per
measurement, applied per lesion) and the CA joint model (two path outputs in training, their max at
inference). Inputs are a dict with the fixed names

    "image":           float32 (S, S, 3) raw RGB 0..255 (scaled inside by `InputScaling`)
    "eis":             float32 (T, 700) raw features, padding rows are zeros
    "eis_mask":        float32 (T,) 1.0 real measurement, 0.0 padding
    "eis_measurement": float32 (700,) one measurement (the FC-NN's training input)

and every inference output is a float32 softmax (B, 2) (benign, malignant), float32 also under
mixed precision. T = `max_measurements` (None: any length). Layer names are prefixed "eis_",
"image_" or "fusion_", so both paths nest in one joint model.

Every EIS path starts with a non-trainable `keras.layers.Normalization` holding the training folds'
per-feature statistics; it computes in float32 (raw impedance magnitudes may exceed float16's
range) and a feature with (near) zero training variance is divided by 1, as scikit-learn's
`StandardScaler` (the SVM's) does, instead of by ~0.
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
from keras import layers

from skinkeras.systems.eis.layers import (
    POOLING_MODES,
    MaskedMalignancyMax,
    MaskedStatePooling,
    MeasurementMask,
    MaxMalignancy,
    MergeMeasurements,
    SplitMeasurements,
)

NUM_FEATURES = 700
FUSIONS = ("lin", "fc", "ca")
# Output names of the CA train model (a dict output; the loss is the sum of both).
IMAGE_PATH, EIS_PATH = "image_path", "eis_path"
# A standard deviation below this is treated as zero (scikit-learn's `_handle_zeros_in_scale` rule
# at float32 precision): such a feature is centred but not scaled.
_MIN_STD = 10 * float(np.finfo(np.float32).eps)


class EISModels(NamedTuple):
    """The model to fit and the model to predict with (often the same object)."""

    train: keras.Model
    infer: keras.Model


def _statistics(mean, variance):
    mean = np.asarray(mean, dtype="float32").reshape(-1)
    variance = np.asarray(variance, dtype="float32").reshape(-1)
    if mean.shape != (NUM_FEATURES,) or variance.shape != (NUM_FEATURES,):
        raise ValueError(
            f"mean and variance must each hold {NUM_FEATURES} values. "
            f"Received: mean.shape={mean.shape}, variance.shape={variance.shape}"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance)) and np.all(variance >= 0)):
        raise ValueError("mean and variance must be finite and variance >= 0. Received: non-finite or negative values")
    variance = np.where(variance < _MIN_STD**2, 1.0, variance).astype("float32")
    return mean, variance


def _normalization(mean, variance, name: str = "eis_normalization"):
    mean, variance = _statistics(mean, variance)
    layer = layers.Normalization(mean=mean, variance=variance, dtype="float32", name=name)
    layer.trainable = False
    return layer


def _check_positive(**values):
    for key, value in values.items():
        if value is not None and int(value) < 1:
            raise ValueError(f"{key} must be a positive integer. Received: {key}={value}")


def _eis_inputs(max_measurements):
    _check_positive(max_measurements=max_measurements)
    steps = None if max_measurements is None else int(max_measurements)
    eis = keras.Input((steps, NUM_FEATURES), name="eis")
    mask = keras.Input((steps,), name="eis_mask")
    return eis, mask


def _dense_bn_relu(x, units: int, *, dtype, name: str):
    x = layers.Dense(int(units), dtype=dtype, name=f"{name}_dense")(x)
    x = layers.BatchNormalization(dtype=dtype, name=f"{name}_bn")(x)
    return layers.ReLU(dtype=dtype, name=f"{name}_relu")(x)


def _softmax(x, name: str):
    return layers.Dense(2, activation="softmax", dtype="float32", name=name)(x)


def build_fcnn(mean, variance, *, hidden=(256, 128), max_measurements, dtype=None) -> EISModels:
    """The per-measurement FC-NN baseline (paper 000: two hidden layers with BN and ReLU).

    train: {"eis_measurement": (700,)} -> Normalization -> (Dense -> BN -> ReLU) x len(hidden)
    -> Dense(2) softmax ("eis_predictions"). infer: {"eis", "eis_mask"} -> the same layers on every
    measurement -> [1 - m, m], m = max over the real measurements of p(malignant) ("eis_lesion_max").
    """
    hidden = tuple(int(units) for units in hidden)
    _check_positive(**{f"hidden[{i}]": units for i, units in enumerate(hidden)})
    stack = [_normalization(mean, variance)]
    for index, units in enumerate(hidden, start=1):
        stack += [
            layers.Dense(units, dtype=dtype, name=f"eis_fc{index}_dense"),
            layers.BatchNormalization(dtype=dtype, name=f"eis_fc{index}_bn"),
            layers.ReLU(dtype=dtype, name=f"eis_fc{index}_relu"),
        ]
    stack.append(layers.Dense(2, activation="softmax", dtype="float32", name="eis_predictions"))

    def apply(x):
        for layer in stack:
            x = layer(x)
        return x

    measurement = keras.Input((NUM_FEATURES,), name="eis_measurement")
    train = keras.Model({"eis_measurement": measurement}, apply(measurement), name="eis_fcnn")

    eis, mask = _eis_inputs(max_measurements)
    rows = MergeMeasurements(name="eis_merge_measurements")(eis)
    per_measurement = SplitMeasurements(dtype="float32", name="eis_split_measurements")([apply(rows), eis])
    lesion = MaskedMalignancyMax(dtype="float32", name="eis_lesion_max")([per_measurement, mask])
    infer = keras.Model({"eis": eis, "eis_mask": mask}, lesion, name="eis_fcnn_lesion")
    return EISModels(train, infer)


def _gru_features(eis, mask, mean, variance, *, pooling, units, hidden, dtype, embedding=0):
    """eis -> Normalization -> [per-measurement Dense + LayerNorm + ReLU] -> masked GRU states ->
    masked pooling -> Dense + BN + ReLU."""
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {POOLING_MODES}. Received: pooling={pooling!r}")
    _check_positive(units=units, hidden=hidden)
    x = _normalization(mean, variance)(eis)
    if embedding:
        # Per measurement (no statistics across steps, so padding changes nothing): a learned
        # projection of the 700 features that the GRU's gates read more easily than raw features.
        x = layers.Dense(int(embedding), dtype=dtype, name="eis_embedding_dense")(x)
        x = layers.BatchNormalization(dtype=dtype, name="eis_embedding_norm")(x)
        x = layers.ReLU(dtype=dtype, name="eis_embedding_relu")(x)
    # The GRU skips masked steps (its state carries over them), so padding anywhere changes no
    # state of a real step; the pooling reads the same mask.
    boolean = MeasurementMask(name="eis_mask_bool")(mask)
    states = layers.GRU(int(units), return_sequences=True, dtype=dtype, name="eis_gru")(x, mask=boolean)
    pooled = MaskedStatePooling(pooling, dtype=dtype, name=f"eis_state_{pooling}_pool")([states, mask])
    return _dense_bn_relu(pooled, hidden, dtype=dtype, name="eis_hidden")


def build_gru(pooling, mean, variance, *, units=64, hidden=64, max_measurements, dtype=None,
              embedding: int = 0) -> EISModels:
    """The GRU over a lesion's measurement sequence (paper 000, "Recurrent Aggregation").

    {"eis", "eis_mask"} -> Normalization -> GRU(units, return_sequences, masked) ->
    `MaskedStatePooling(pooling)` ("last", "mean" or the paper's "max") -> Dense(hidden) + BN + ReLU
    -> Dense(2) softmax ("eis_predictions"). `train is infer`.
    """
    eis, mask = _eis_inputs(max_measurements)
    features = _gru_features(eis, mask, mean, variance, pooling=pooling, units=units, hidden=hidden, dtype=dtype,
                             embedding=embedding)
    outputs = _softmax(features, "eis_predictions")
    model = keras.Model({"eis": eis, "eis_mask": mask}, outputs, name=f"eis_gru_{pooling}")
    return EISModels(model, model)


def _image_features(image, backbone, crop_size, *, weights, dtype):
    """image -> InputScaling -> registry backbone -> global average pooling."""
    from skinkeras.models.backbones import build_backbone, get_backbone_spec
    from skinkeras.preprocessing.scaling import InputScaling

    spec = get_backbone_spec(backbone)
    network = build_backbone(backbone, (crop_size, crop_size, 3), weights, dtype=dtype)
    x = InputScaling(spec.scaling, dtype=dtype, name="image_scaling")(image)
    x = network(x)
    return layers.GlobalAveragePooling2D(dtype=dtype, name="image_gap")(x)


def _image_input(crop_size):
    _check_positive(crop_size=crop_size)
    return keras.Input((int(crop_size), int(crop_size), 3), name="image")


def build_cnn(backbone, crop_size, *, weights=None, dtype=None) -> EISModels:
    """The dermoscopy CNN (paper 000: DenseNet121 / SE-ResNeXt50, ImageNet or from scratch).

    {"image"} -> InputScaling -> `build_backbone(backbone)` -> GAP -> Dense(2) softmax
    ("image_predictions"). `train is infer`.
    """
    image = _image_input(crop_size)
    features = _image_features(image, backbone, int(crop_size), weights=weights, dtype=dtype)
    outputs = _softmax(features, "image_predictions")
    model = keras.Model({"image": image}, outputs, name=f"image_{backbone.lower()}")
    return EISModels(model, model)


def build_joint(
    fusion,
    backbone,
    crop_size,
    mean,
    variance,
    *,
    weights=None,
    units=64,
    hidden=64,
    fc_units=128,
    max_measurements,
    dtype=None,
    embedding: int = 0,
) -> EISModels:
    """A joint image + EIS model (paper 000, Figure 3), trained end to end.

    Image features: the backbone's GAP vector. EIS features: the GRU with state-max pooling *after*
    its Dense(hidden) + BN + ReLU, i.e. the vector the EIS-only model feeds its output layer (the
    paper fuses "before the output" of the two models introduced above).

    fusion "lin": concat -> Dense(2) softmax ("fusion_predictions").
    fusion "fc": concat -> Dense(fc_units) + BN + ReLU -> Dense(2) softmax ("fusion_predictions").
    fusion "ca": `cross_attention_gating` both ways ("fusion_cross_attention_*"), then each gated
    path its own Dense(2) softmax; train outputs {"image_path", "eis_path"} (sum both losses), infer
    (same layers) outputs [1 - m, m] with m the max of the two paths' p(malignant) ("fusion_max").
    `train is infer` for "lin" and "fc".
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}. Received: fusion={fusion!r}")
    image = _image_input(crop_size)
    eis, mask = _eis_inputs(max_measurements)
    inputs = {"image": image, "eis": eis, "eis_mask": mask}
    image_features = _image_features(image, backbone, int(crop_size), weights=weights, dtype=dtype)
    eis_features = _gru_features(eis, mask, mean, variance, pooling="max", units=units, hidden=hidden, dtype=dtype,
                                 embedding=embedding)
    name = f"fusion_{backbone.lower()}_gru_{fusion}"
    if fusion == "ca":
        from skinkeras.models.cross_attention import cross_attention_gating

        gated_image, gated_eis = cross_attention_gating(
            image_features, eis_features, dtype=dtype, name="fusion_cross_attention"
        )
        image_probabilities = _softmax(gated_image, IMAGE_PATH)
        eis_probabilities = _softmax(gated_eis, EIS_PATH)
        train = keras.Model(inputs, {IMAGE_PATH: image_probabilities, EIS_PATH: eis_probabilities}, name=name)
        combined = MaxMalignancy(dtype="float32", name="fusion_max")([image_probabilities, eis_probabilities])
        infer = keras.Model(inputs, combined, name=f"{name}_max")
        return EISModels(train, infer)
    _check_positive(fc_units=fc_units)
    x = layers.Concatenate(dtype=dtype, name="fusion_concat")([image_features, eis_features])
    if fusion == "fc":
        x = _dense_bn_relu(x, fc_units, dtype=dtype, name="fusion_fc")
    model = keras.Model(inputs, _softmax(x, "fusion_predictions"), name=name)
    return EISModels(model, model)
