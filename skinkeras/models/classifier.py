"""Classifier builder: backbone + head + optional metadata branch + Dense(num_classes, softmax).

One config (`ClassifierConfig`) describes the model; `build_classifier(config)` builds it. Inputs
are a dict: `image` (raw 0..255 RGB; scaling for the backbone happens inside the model) and, with a
metadata branch, `metadata` (the encoded float vector). The softmax computes in float32 whatever
the dtype policy, so mixed-precision models still output float32 probabilities.

Example (paper 001's DenseNet201 + soft attention + metadata; 17,596,248 parameters: the reference's
17,596,250 minus its age Normalization layer's 3, plus our learnable gamma's 1):

    >>> config = ClassifierConfig("DenseNet201", "soft_attention", num_classes=7,
    ...                           metadata="paper001", metadata_features=21)
    >>> model = build_classifier(config)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
from keras import layers

from skinkeras.models.backbones import build_backbone, get_backbone_spec
from skinkeras.models.heads import HEADS
from skinkeras.models.metadata_branch import METADATA_BRANCHES, metadata_branch
from skinkeras.preprocessing.scaling import InputScaling

# The layer names exporters rely on (the int8 head rescaling and logit centering in
# `skinkeras.export.tflite`): the softmax Dense, the optional hidden Dense before it, and the
# concatenation of image and metadata features.
PREDICTIONS = "predictions"
HIDDEN = "hidden"
FUSION = "fusion"


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that defines a classifier.

    Args:
        backbone: a backbone registry name.
        head: "gap", "se", "cbam" or "soft_attention".
        num_classes: outputs of the final softmax.
        image_size: square input size; None = the backbone's default size.
        metadata: None, "paper001" or "gessert" (see `metadata_branch`).
        metadata_features: width of the metadata vector (20 for our HAM10000 encoding).
        weights: backbone weights: None, "imagenet" or a weights file.
        attention_heads, attention_gamma_init, attention_dropout: soft-attention head settings
            (gamma_init None = no gamma, as in the paper-001 reference code).
        se_ratio, cbam_ratio: reduction ratios of the SE and CBAM heads.
        hidden_units: optional Dense(relu) layer before the output (paper 002: 128).
        dropout: dropout before the output layer (0 = none).
        trainable_backbone: False freezes the backbone (transfer learning's first stage).
        dtype: dtype policy name for the whole model, or None (current global policy).
    """

    backbone: str = "DenseNet201"
    head: str = "soft_attention"
    num_classes: int = 7
    image_size: int | None = None
    metadata: str | None = None
    metadata_features: int = 20
    weights: str | None = None
    attention_heads: int = 16
    attention_gamma_init: float | None = 0.01
    attention_dropout: float = 0.5
    se_ratio: int = 16
    cbam_ratio: int = 16
    hidden_units: int | None = None
    dropout: float = 0.0
    trainable_backbone: bool = True
    dtype: str | None = None

    def __post_init__(self):
        get_backbone_spec(self.backbone)  # ValueError listing the valid names
        if self.head not in HEADS:
            raise ValueError(f"Unknown head. Expected one of {', '.join(HEADS)}. Received: head={self.head!r}")
        if self.metadata is not None and self.metadata not in METADATA_BRANCHES:
            raise ValueError(
                f"Unknown metadata branch. Expected None or one of {METADATA_BRANCHES}. "
                f"Received: metadata={self.metadata!r}"
            )
        if int(self.num_classes) < 1:
            raise ValueError(f"num_classes must be positive. Received: num_classes={self.num_classes}")
        if self.metadata is not None and int(self.metadata_features) < 1:
            raise ValueError(
                f"metadata_features must be positive. Received: metadata_features={self.metadata_features}"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")

    @property
    def input_size(self) -> int:
        return self.image_size or get_backbone_spec(self.backbone).default_size

    @classmethod
    def from_dict(cls, values: dict) -> "ClassifierConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown classifier config keys {unknown}. Expected some of {sorted(known)}.")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_classifier(
    config: ClassifierConfig, *, dtype=None, backbone: keras.Model | None = None, name: str | None = None
) -> keras.Model:
    """Builds the classifier described by `config`.

    Args:
        dtype: overrides `config.dtype` (dtype policy name).
        backbone: an already built backbone from `build_backbone(config.backbone, ...,
            features=<the head's feature point>)` to reuse (tests build several heads on one).
    """
    dtype = dtype or config.dtype
    spec = get_backbone_spec(config.backbone)
    head_fn, feature_point = HEADS[config.head]
    size = config.input_size
    if backbone is None:
        backbone = build_backbone(
            config.backbone, (size, size, 3), config.weights, features=feature_point, dtype=dtype
        )
    backbone.trainable = config.trainable_backbone

    image = keras.Input((size, size, 3), name="image")
    inputs = {"image": image}
    x = InputScaling(spec.scaling, dtype=dtype, name="input_scaling")(image)
    x = backbone(x)
    x = head_fn(
        x,
        attention_heads=config.attention_heads,
        attention_gamma_init=config.attention_gamma_init,
        attention_dropout=config.attention_dropout,
        se_ratio=config.se_ratio,
        cbam_ratio=config.cbam_ratio,
        dtype=dtype,
        name="head",
    )
    if config.metadata is not None:
        meta = keras.Input((int(config.metadata_features),), name="metadata")
        inputs["metadata"] = meta
        meta_features = metadata_branch(meta, config.metadata, dtype=dtype, name="metadata")
        x = layers.Concatenate(dtype=dtype, name=FUSION)([x, meta_features])
    if config.hidden_units:
        x = layers.Dense(int(config.hidden_units), activation="relu", dtype=dtype, name=HIDDEN)(x)
    if config.dropout:
        x = layers.Dropout(float(config.dropout), dtype=dtype, name="dropout")(x)
    outputs = layers.Dense(int(config.num_classes), activation="softmax", dtype="float32", name=PREDICTIONS)(x)
    model_name = name or f"{config.backbone.lower()}_{config.head}" + (
        f"_{config.metadata}" if config.metadata else ""
    )
    return keras.Model(inputs, outputs, name=model_name)
