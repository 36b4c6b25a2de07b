"""Backbone registry: keras.applications entries (plus our SE-ResNeXt50) as data, one row each.

A row holds the constructor, the default input size, the input scaling its ImageNet weights expect
(`skinkeras.preprocessing.scaling` modes), the width of its final feature map, its soft-attention
insertion point (paper 001; REFERENCES.md) and the keras.io documentation figures for it.

Insertion points: layers after the point are dropped when the soft-attention head is used. Points
given by paper 001's reference code: DenseNet201, ResNet50, ResNet152, MobileNetV2,
InceptionResNetV2, MobileNetV3Large, NASNetMobile. The others are our choice, noted in each row
(the minimalistic MobileNetV3 rows: the same place as their hard-swish counterparts).
Auto-named layers (`activation_195`, whose number depends on how many layers the session built
before) are found from a named anchor layer by walking back through its inputs, and the layer type
and channel count found are checked, so a keras.applications change fails loudly.

A new backbone = one row here + it is picked up by the parametrised tests.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Callable

import keras

FEATURE_POINTS = ("final", "attention")


@dataclass(frozen=True)
class InsertionPoint:
    """Where the soft-attention module attaches.

    Args:
        anchor: a layer name that keras.applications sets explicitly.
        back: input indices to follow backwards from the anchor: `(0, 0)` is "the layer feeding the
            anchor's first input, then the layer feeding that one's first input". Empty: the anchor.
        layer_type: class name the selected layer must have (checked).
        shape: (H, W, C) of its output at the default input size (C checked at every size, H and W
            at the default size).
        source: "paper001" (reference code) or "ours" (our choice; see `note`).
    """

    anchor: str
    shape: tuple[int, int, int]
    layer_type: str
    back: tuple[int, ...] = ()
    source: str = "paper001"
    note: str = ""


@dataclass(frozen=True)
class DocumentedFigures:
    """keras.applications documentation figures (keras.io/api/applications, "Available models").

    Size of the weights file (MB), ImageNet top-1 / top-5, parameters (millions, with top), depth,
    and time per inference step in ms for batches of 32 on CPU (92-core AMD EPYC) and GPU (A100).
    """

    size_mb: float
    top1: float
    top5: float
    params_m: float
    depth: int
    cpu_ms: float
    gpu_ms: float


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    constructor: Callable[..., keras.Model]
    default_size: int
    min_size: int
    scaling: str
    feature_width: int
    attention: InsertionPoint
    documented: DocumentedFigures | None = None
    constructor_kwargs: dict = field(default_factory=dict)
    imagenet_weights: bool = True


def _app(attr: str) -> Callable[..., keras.Model]:
    # Resolved at call time so the registry can be read without building anything.
    def construct(**kwargs):
        return getattr(keras.applications, attr)(**kwargs)

    construct.__name__ = f"keras.applications.{attr}"
    return construct


def _se_resnext50(**kwargs):
    from skinkeras.models.se_resnext import SEResNeXt50

    return SEResNeXt50(**kwargs)


_se_resnext50.__name__ = "skinkeras.models.se_resnext.SEResNeXt50"

TINY_WIDTHS = (16, 32, 48, 64)


def _tiny_blocks(prefix: str, name: str, *, squeeze_excite: bool, weights=None, input_shape=None):
    """Four stride-2 conv + BN + ReLU blocks (`TINY_WIDTHS`), each optionally followed by
    squeeze-and-excitation (GAP -> Dense(C/4, ReLU) -> Dense(C, sigmoid) -> channel scaling)."""
    inputs = keras.Input(shape=input_shape, name=f"{prefix}_input")
    x = inputs
    for index, width in enumerate(TINY_WIDTHS, start=1):
        block = f"{prefix}_block{index}"
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{block}_bn")(x)
        x = keras.layers.ReLU(name=f"{block}_relu")(x)
        if squeeze_excite:
            squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{block}_se_squeeze")(x)
            squeeze = keras.layers.Dense(max(width // 4, 1), activation="relu", name=f"{block}_se_reduce")(squeeze)
            squeeze = keras.layers.Dense(width, activation="sigmoid", name=f"{block}_se_expand")(squeeze)
            x = keras.layers.Multiply(name=f"{block}_se_scale")([x, squeeze])
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def _tiny_cnn(*, include_top=False, weights=None, input_shape=None, **_):
    """Four stride-2 conv + BN + ReLU blocks: a backbone that builds, traces and trains in a second.

    Not a paper model. It is what the test suite and smoke runs train when the backbone is not what
    they test (a MobileNetV3Small run spends most of a tiny test's time tracing its ~230 layers).
    """
    del include_top  # no classification top either way
    return _tiny_blocks("tiny", "tiny_cnn", squeeze_excite=False, weights=weights, input_shape=input_shape)


_tiny_cnn.__name__ = "skinkeras.models.backbones.TinyCNN"


def _tiny_se_net(*, include_top=False, weights=None, input_shape=None, **_):
    """TinyCNN's four blocks, each followed by squeeze-and-excitation: a second small CNN for
    CPU-sized configs where a paper compares two backbones (paper 000's SE-ResNeXt50 stand-in).
    Not a paper model."""
    del include_top
    return _tiny_blocks("tinyse", "tiny_se_net", squeeze_excite=True, weights=weights, input_shape=input_shape)


_tiny_se_net.__name__ = "skinkeras.models.backbones.TinySENet"

_D = DocumentedFigures

_ROWS = (
    BackboneSpec(
        "DenseNet121", _app("DenseNet121"), 224, 32, "torch", 1024,
        InsertionPoint("conv5_block16_1_relu", (7, 7, 128), "Activation", source="ours",
                       note="as DenseNet201: bottleneck ReLU of the last dense layer"),
        _D(33, 75.0, 92.3, 8.1, 242, 77.1, 5.4),
    ),
    BackboneSpec(
        "DenseNet169", _app("DenseNet169"), 224, 32, "torch", 1664,
        InsertionPoint("conv5_block32_1_relu", (7, 7, 128), "Activation", source="ours",
                       note="as DenseNet201: bottleneck ReLU of the last dense layer"),
        _D(57, 76.2, 93.2, 14.3, 338, 96.4, 6.3),
    ),
    BackboneSpec(
        "DenseNet201", _app("DenseNet201"), 224, 32, "torch", 1920,
        InsertionPoint("conv5_block29_1_relu", (7, 7, 128), "Activation"),
        _D(80, 77.3, 93.6, 20.2, 402, 127.2, 6.7),
    ),
    BackboneSpec(
        "InceptionV3", _app("InceptionV3"), 299, 75, "tf", 2048,
        InsertionPoint("mixed10", (8, 8, 2048), "Concatenate", source="ours",
                       note="final feature map"),
        _D(92, 77.9, 93.7, 23.9, 189, 42.2, 6.9),
    ),
    BackboneSpec(
        "InceptionResNetV2", _app("InceptionResNetV2"), 299, 75, "tf", 1536,
        InsertionPoint("block8_9_mixed", (8, 8, 192), "BatchNormalization", back=(0, 0),
                       note="batch norm of block8_9's branch_0 (auto-named)"),
        _D(215, 80.3, 95.3, 55.9, 449, 130.2, 10.0),
    ),
    BackboneSpec(
        "Xception", _app("Xception"), 299, 71, "tf", 2048,
        InsertionPoint("block14_sepconv2_act", (10, 10, 2048), "Activation", source="ours",
                       note="final feature map"),
        _D(88, 79.0, 94.5, 22.9, 81, 109.4, 8.1),
    ),
    BackboneSpec(
        "ResNet50", _app("ResNet50"), 224, 32, "caffe", 2048,
        InsertionPoint("conv5_block3_out", (7, 7, 2048), "Activation"),
        _D(98, 74.9, 92.1, 25.6, 107, 58.2, 4.6),
    ),
    BackboneSpec(
        "ResNet152", _app("ResNet152"), 224, 32, "caffe", 2048,
        InsertionPoint("conv5_block1_out", (7, 7, 2048), "Activation"),
        _D(232, 76.6, 93.1, 60.4, 311, 127.4, 6.5),
    ),
    BackboneSpec(
        "VGG16", _app("VGG16"), 224, 32, "caffe", 512,
        InsertionPoint("block5_conv3", (14, 14, 512), "Conv2D", source="ours",
                       note="last convolution, before the last max-pool"),
        _D(528, 71.3, 90.1, 138.4, 16, 69.5, 4.2),
    ),
    BackboneSpec(
        "NASNetMobile", _app("NASNetMobile"), 224, 32, "tf", 1056,
        InsertionPoint("separable_conv_1_normal_left1_12", (7, 7, 176), "Activation", back=(0,),
                       note="ReLU at the start of the last normal cell (auto-named); the cell is dropped"),
        _D(23, 74.4, 91.9, 5.3, 389, 27.0, 6.7),
    ),
    BackboneSpec(
        "NASNetLarge", _app("NASNetLarge"), 331, 32, "tf", 4032,
        InsertionPoint("separable_conv_1_normal_left1_17", (11, 11, 672), "Activation", back=(0,),
                       source="ours",
                       note="ReLU at the start of the second-last normal cell; paper 001 drops the two last cells"),
        _D(343, 82.5, 96.0, 88.9, 533, 344.5, 20.0),
    ),
    BackboneSpec(
        "MobileNetV2", _app("MobileNetV2"), 224, 32, "tf", 1280,
        InsertionPoint("block_14_depthwise", (7, 7, 960), "DepthwiseConv2D"),
        _D(14, 71.3, 90.1, 3.5, 105, 25.9, 3.8),
    ),
    BackboneSpec(
        "MobileNetV3Small", _app("MobileNetV3Small"), 224, 32, "raw", 576,
        InsertionPoint("expanded_conv_10_squeeze_excite_avg_pool", (7, 7, 576), "Activation", back=(0,),
                       source="ours",
                       note="as MobileNetV3Large: activation after the last block's depthwise BN"),
        None,
        {"include_preprocessing": True},
    ),
    BackboneSpec(
        "MobileNetV3Large", _app("MobileNetV3Large"), 224, 32, "raw", 960,
        InsertionPoint("expanded_conv_14_squeeze_excite_avg_pool", (7, 7, 960), "Activation", back=(0,),
                       note="activation after expanded_conv_14_depthwise_bn (auto-named)"),
        None,
        {"include_preprocessing": True},
    ),
    # Minimalistic MobileNetV3 (keras.applications `minimalistic=True`): ReLU instead of hard swish,
    # no squeeze-excite, 3x3 kernels only, so every op of its int8 graph runs in XNNPACK (LiteRT 2.3.0
    # runs int8 HARD_SWISH outside the delegate). The phone models (`ham10000_phone_int8`).
    BackboneSpec(
        "MobileNetV3SmallMinimalistic", _app("MobileNetV3Small"), 224, 32, "raw", 576,
        InsertionPoint("expanded_conv_10_project", (7, 7, 576), "ReLU", back=(0,), source="ours",
                       note="as MobileNetV3Small: activation after the last block's depthwise BN (auto-named)"),
        None,
        {"include_preprocessing": True, "minimalistic": True},
    ),
    BackboneSpec(
        "MobileNetV3LargeMinimalistic", _app("MobileNetV3Large"), 224, 32, "raw", 960,
        InsertionPoint("expanded_conv_14_project", (7, 7, 960), "ReLU", back=(0,), source="ours",
                       note="as MobileNetV3Large: activation after the last block's depthwise BN (auto-named)"),
        None,
        {"include_preprocessing": True, "minimalistic": True},
    ),
    BackboneSpec(
        "SEResNeXt50", _se_resnext50, 224, 32, "torch", 2048,
        InsertionPoint("conv5_block3_out", (7, 7, 2048), "ReLU", source="ours", note="final feature map"),
        None,
        imagenet_weights=False,
    ),
    BackboneSpec(
        "TinyCNN", _tiny_cnn, 64, 16, "tf", TINY_WIDTHS[-1],
        InsertionPoint(f"tiny_block{len(TINY_WIDTHS)}_relu", (4, 4, TINY_WIDTHS[-1]), "ReLU", source="ours",
                       note="final feature map; tests and smoke runs only, not a paper model"),
        None,
        imagenet_weights=False,
    ),
    BackboneSpec(
        "TinySENet", _tiny_se_net, 64, 16, "tf", TINY_WIDTHS[-1],
        InsertionPoint(f"tinyse_block{len(TINY_WIDTHS)}_se_scale", (4, 4, TINY_WIDTHS[-1]), "Multiply",
                       source="ours", note="final feature map; CPU-sized configs, not a paper model"),
        None,
        imagenet_weights=False,
    ),
)

BACKBONES: dict[str, BackboneSpec] = {row.name: row for row in _ROWS}


def backbone_names() -> list[str]:
    return list(BACKBONES)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The registry row for `name`; ValueError listing the valid names otherwise."""
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown backbone. Expected one of {', '.join(BACKBONES)}. Received: name={name!r}"
        ) from None


@contextlib.contextmanager
def dtype_policy_scope(dtype):
    """Builds keras.applications models under `dtype` (their constructors take no dtype) and puts
    the previous global policy back afterwards, so mixed precision stays plumbed, not global."""
    if dtype is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _producer(tensor):
    return tensor._keras_history[0]


def find_insertion_layer(model: keras.Model, point: InsertionPoint) -> keras.layers.Layer:
    """The layer of `model` at `point`, with its type and channel count checked."""
    try:
        layer = model.get_layer(point.anchor)
    except ValueError:
        raise ValueError(
            f"Insertion anchor {point.anchor!r} not found in {model.name}. Received: point={point}"
        ) from None
    for index in point.back:
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        if index >= len(inputs):
            raise ValueError(f"Layer {layer.name} has {len(inputs)} inputs. Received: point={point}")
        layer = _producer(inputs[index])
    found_type = type(layer).__name__
    channels = layer.output.shape[-1]
    if found_type != point.layer_type or channels != point.shape[-1]:
        raise ValueError(
            f"Soft-attention insertion point of {model.name} moved: expected a {point.layer_type} "
            f"with {point.shape[-1]} channels, found {layer.name} ({found_type}, output "
            f"{tuple(layer.output.shape)}). Received: point={point}"
        )
    return layer


def build_backbone(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    weights: str | None = None,
    *,
    features: str = "final",
    dtype=None,
) -> keras.Model:
    """Builds a registered backbone without its classification top.

    Args:
        name: a registry name (`backbone_names()`).
        input_shape: (H, W, 3); default: (default_size, default_size, 3).
        weights: None (random), "imagenet" (downloaded by Keras) or the path of a weights file
            saved from the same backbone built with `features="final"`.
        features: "final" (the last feature map) or "attention" (the soft-attention insertion
            point; later layers dropped).
        dtype: a dtype policy name ("float32", "mixed_float16", "mixed_bfloat16") or None
            (the current global policy).

    The returned model takes input already scaled for the backbone (`get_backbone_spec(name)
    .scaling`); `build_classifier` puts an `InputScaling` layer in front.
    """
    spec = get_backbone_spec(name)
    if features not in FEATURE_POINTS:
        raise ValueError(f"features must be one of {FEATURE_POINTS}. Received: features={features!r}")
    if input_shape is None:
        input_shape = (spec.default_size, spec.default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3). Received: input_shape={input_shape}")
    if any(s is not None and s < spec.min_size for s in input_shape[:2]):
        raise ValueError(
            f"{name} needs inputs of at least {spec.min_size} x {spec.min_size} pixels. "
            f"Received: input_shape={input_shape}"
        )
    if weights not in (None, "imagenet"):
        if not isinstance(weights, (str, os.PathLike)) or not os.path.isfile(weights):
            raise ValueError(
                f"weights must be None, 'imagenet' or an existing weights file. Received: weights={weights!r}"
            )
        weights = os.fspath(weights)
    if weights == "imagenet" and not spec.imagenet_weights:
        raise ValueError(f"No ImageNet weights exist in Keras for {name}. Received: weights='imagenet'")

    with dtype_policy_scope(dtype):
        model = spec.constructor(
            include_top=False, weights=weights, input_shape=input_shape, **spec.constructor_kwargs
        )
        if features == "final":
            return model
        layer = find_insertion_layer(model, spec.attention)
        at_default = input_shape[:2] == (spec.default_size, spec.default_size)
        if at_default and tuple(layer.output.shape[1:]) != spec.attention.shape:
            raise ValueError(
                f"Soft-attention insertion point of {name} has shape {tuple(layer.output.shape[1:])} at "
                f"the default size; expected {spec.attention.shape}."
            )
        return keras.Model(model.input, layer.output, name=f"{model.name}_to_{layer.name}")
