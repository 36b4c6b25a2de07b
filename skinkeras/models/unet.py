"""U-Net lesion segmentation (paper 002's first stage; Ronneberger et al. 2015).

`build_unet`: 4 encoder blocks (two 3x3 conv + BatchNorm + ReLU, then 2x2 max-pool), a bottleneck
block, 4 decoder blocks (2x2 transposed conv, stride 2; concatenate the skip; two 3x3 conv + BN +
ReLU) and a 1x1 conv with a float32 sigmoid. Paper 002 does not mention batch normalisation; we add
it (on by default, `batch_norm=False` gives the plain paper block) because it lets a U-Net trained
from scratch converge in the few epochs a CPU budget allows. Convolutions are "same"-padded, so the
output has the input's size.

`build_unet_encoder`: the same decoder on a registry backbone (MobileNetV2, ResNet50), its skip
features taken at strides 2, 4, 8, 16 by layer name and the bottleneck at stride 32.

Inputs are raw RGB 0..255 of any size: the model scales them (`InputScaling`), pads height and
width up to a multiple of the total stride (`PadToMultiple`, zeros after scaling) and crops the
mask back to the input size (`CropToReference`), so odd sizes such as 33 x 37 work.
"""

from __future__ import annotations

import keras
from keras import ops

from skinkeras.models.backbones import build_backbone, dtype_policy_scope, get_backbone_spec
from skinkeras.preprocessing.scaling import InputScaling

# Skip features at strides 2, 4, 8, 16 and the stride-32 bottleneck, by layer name (the layer
# names of keras.applications; the same picks as TensorFlow's segmentation tutorial for MobileNetV2).
ENCODER_SKIPS = {
    "MobileNetV2": (
        ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu"),
        "out_relu",
    ),
    "ResNet50": (
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"),
        "conv5_block3_out",
    ),
}


@keras.saving.register_keras_serializable(package="skinkeras")
class PadToMultiple(keras.layers.Layer):
    """Zero-pads height and width (bottom and right) up to a multiple of `multiple`.

    Example:
        >>> tuple(PadToMultiple(16)(keras.ops.ones((1, 33, 37, 3))).shape)
        (1, 48, 48, 3)
    """

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        if int(multiple) < 1:
            raise ValueError(f"multiple must be >= 1. Received: multiple={multiple}")
        self.multiple = int(multiple)

    def call(self, inputs):
        shape = ops.shape(inputs)
        pad_h = (-shape[1]) % self.multiple
        pad_w = (-shape[2]) % self.multiple
        return ops.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        def up(size):
            return None if size is None else -(-size // self.multiple) * self.multiple

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="skinkeras")
class CropToReference(keras.layers.Layer):
    """Crops `[x, reference]` -> x's top-left corner with the reference's height and width."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


def _check_input_shape(input_shape):
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3). Received: input_shape={input_shape}")
    return input_shape


def _needs_padding(input_shape, multiple: int) -> bool:
    return any(size is None or size % multiple for size in input_shape[:2])


def conv_block(x, filters: int, name: str, batch_norm: bool = True):
    """Two 3x3 convolutions, each followed by (BatchNorm and) ReLU."""
    for index in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                                kernel_initializer="he_normal", name=f"{name}_conv{index}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return x


def up_block(x, skip, filters: int, name: str, batch_norm: bool = True):
    """2x2 transposed convolution (stride 2), concatenation with the skip, `conv_block`."""
    x = keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_up")(x)
    if skip is not None:
        x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    return conv_block(x, filters, name, batch_norm)


def _mask_head(x, inputs, padded: bool):
    x = keras.layers.Conv2D(1, 1, name="mask_logits")(x)
    # float32 probabilities under mixed precision (a float16 sigmoid saturates near 0 and 1).
    x = keras.layers.Activation("sigmoid", dtype="float32", name="mask")(x)
    if padded:
        x = CropToReference(dtype="float32", name="crop_to_input")([x, inputs])
    return x


def build_unet(
    input_shape=(None, None, 3),
    base_filters: int = 32,
    depth: int = 4,
    *,
    batch_norm: bool = True,
    dtype=None,
    name: str = "unet",
) -> keras.Model:
    """The U-Net of paper 002: raw RGB 0..255 `[H, W, 3]` -> lesion probability `[H, W, 1]`.

    Args:
        input_shape: (H, W, 3); None for a size free dimension. Any size: padded inside.
        base_filters: filters of the first encoder block, doubled per block (bottleneck:
            base_filters * 2**depth).
        depth: number of encoder (and decoder) blocks.
        batch_norm: BatchNorm after every 3x3 convolution (not in the paper; see the module doc).
        dtype: dtype policy name or None (the global policy).

    Example:
        >>> model = build_unet((33, 37, 3), base_filters=4)
        >>> tuple(model.output.shape)
        (None, 33, 37, 1)
    """
    input_shape = _check_input_shape(input_shape)
    if base_filters < 1 or depth < 1:
        raise ValueError(f"base_filters and depth must be >= 1. Received: base_filters={base_filters}, depth={depth}")
    multiple = 2**depth
    padded = _needs_padding(input_shape, multiple)
    with dtype_policy_scope(dtype):
        inputs = keras.Input(input_shape, name="image")
        x = InputScaling("tf", name="scaling")(inputs)
        if padded:
            x = PadToMultiple(multiple, name="pad")(x)
        skips = []
        for level in range(depth):
            x = conv_block(x, base_filters * 2**level, f"enc{level + 1}", batch_norm)
            skips.append(x)
            x = keras.layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
        x = conv_block(x, base_filters * 2**depth, "bottleneck", batch_norm)
        for level in reversed(range(depth)):
            x = up_block(x, skips[level], base_filters * 2**level, f"dec{level + 1}", batch_norm)
        outputs = _mask_head(x, inputs, padded)
        return keras.Model(inputs, outputs, name=name)


def build_unet_encoder(
    backbone_name: str,
    input_shape=(None, None, 3),
    weights=None,
    *,
    decoder_filters=(256, 128, 64, 32, 16),
    batch_norm: bool = True,
    dtype=None,
    name: str | None = None,
) -> keras.Model:
    """A U-Net whose encoder is a registry backbone (`ENCODER_SKIPS` lists the supported ones).

    The decoder upsamples the stride-32 features five times (2x2 transposed conv, stride 2), joining
    the backbone's features at strides 16, 8, 4 and 2; the last step has no skip.

    Args:
        backbone_name: "MobileNetV2" or "ResNet50".
        input_shape: (H, W, 3), None dimensions allowed; padded inside to a multiple of 32.
        weights: None, "imagenet" or a weights file of the backbone (see `build_backbone`).
        decoder_filters: filters of the five decoder blocks, from stride 16 to stride 1.
        dtype: dtype policy name or None.
    """
    if backbone_name not in ENCODER_SKIPS:
        raise ValueError(
            f"No U-Net encoder skips are defined for this backbone; supported: {', '.join(ENCODER_SKIPS)}. "
            f"Received: backbone_name={backbone_name!r}"
        )
    if len(decoder_filters) != 5:
        raise ValueError(f"decoder_filters needs 5 values. Received: decoder_filters={decoder_filters}")
    input_shape = _check_input_shape(input_shape)
    spec = get_backbone_spec(backbone_name)
    skip_names, bottom_name = ENCODER_SKIPS[backbone_name]
    padded = _needs_padding(input_shape, 32)
    with dtype_policy_scope(dtype):
        backbone = build_backbone(backbone_name, (None, None, 3), weights)
        encoder = keras.Model(
            backbone.input,
            [backbone.get_layer(n).output for n in (*skip_names, bottom_name)],
            name=f"{backbone_name.lower()}_encoder",
        )
        inputs = keras.Input(input_shape, name="image")
        x = InputScaling(spec.scaling, name="scaling")(inputs)
        if padded:
            x = PadToMultiple(32, name="pad")(x)
        *skips, x = encoder(x)
        for index, filters in enumerate(decoder_filters):
            skip = skips[len(skips) - 1 - index] if index < len(skips) else None
            x = up_block(x, skip, filters, f"dec{index + 1}", batch_norm)
        outputs = _mask_head(x, inputs, padded)
        return keras.Model(inputs, outputs, name=name or f"unet_{backbone_name.lower()}")
