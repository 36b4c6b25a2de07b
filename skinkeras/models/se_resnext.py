"""SE-ResNeXt50 (32x4d): ResNeXt-50 with squeeze-and-excitation in every block (Hu et al. 2018).

Paper 000 uses it as a dermoscopy CNN. It is not in keras.applications, so we build it from Keras
layers, following the SENet paper's SE-ResNeXt-50 (Table 1): a 7x7/2 stem and 3x3/2 max-pool, then
[3, 4, 6, 3] bottlenecks with 32 groups of width 4 (inner widths 128, 256, 512, 1024; outputs 256,
512, 1024, 2048), the stride on the grouped 3x3 convolution, SE with ratio 16 before the residual
sum, and 1x1 projection shortcuts at each stage's first block.

No ImageNet weights are shipped for it in Keras: `weights` is None or a local weights file saved
from this model. Its trainable-parameter count with a 1000-way top equals the PyTorch reference
`se_resnext50_32x4d` (27,559,896; Keras also counts the BatchNorm moving statistics, which PyTorch
keeps as buffers).
"""

from __future__ import annotations

import keras
from keras import layers

from skinkeras.models.squeeze_excitation import squeeze_excite

STAGE_BLOCKS = (3, 4, 6, 3)
CARDINALITY = 32
BASE_WIDTH = 4
_BN_EPSILON = 1e-5


def _bottleneck(x, *, inner: int, out: int, stride: int, project: bool, name: str):
    shortcut = x
    if project:
        shortcut = layers.Conv2D(out, 1, strides=stride, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv2D(inner, 1, use_bias=False, name=f"{name}_1_conv")(x)
    y = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_1_bn")(y)
    y = layers.ReLU(name=f"{name}_1_relu")(y)
    if stride > 1:
        y = layers.ZeroPadding2D(1, name=f"{name}_2_pad")(y)
        y = layers.Conv2D(inner, 3, strides=stride, groups=CARDINALITY, use_bias=False, name=f"{name}_2_conv")(y)
    else:
        y = layers.Conv2D(inner, 3, padding="same", groups=CARDINALITY, use_bias=False, name=f"{name}_2_conv")(y)
    y = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_2_bn")(y)
    y = layers.ReLU(name=f"{name}_2_relu")(y)
    y = layers.Conv2D(out, 1, use_bias=False, name=f"{name}_3_conv")(y)
    y = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_3_bn")(y)
    y = squeeze_excite(y, ratio=16, name=f"{name}_se")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def SEResNeXt50(
    include_top: bool = False,
    weights: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    classes: int = 1000,
    name: str = "se_resnext50",
) -> keras.Model:
    """Builds SE-ResNeXt50 (32x4d); input already scaled (ImageNet "torch" normalisation).

    Args:
        include_top: add global average pooling and a `classes`-way softmax.
        weights: None or the path of a weights file saved from this architecture.
        input_shape: (H, W, 3); None means (None, None, 3). At least 32 x 32.

    Layer names follow keras.applications ResNet (`conv{stage}_block{i}_...`), so the final feature
    map is `conv5_block3_out` (7 x 7 x 2048 at 224 px).
    """
    if weights not in (None,) and not isinstance(weights, str):
        raise ValueError(f"weights must be None or a file path. Received: weights={weights!r}")
    if weights == "imagenet":
        raise ValueError(
            "No ImageNet weights exist for SEResNeXt50 in Keras; pass weights=None or a local "
            "weights file. Received: weights='imagenet'"
        )
    inputs = keras.Input(shape=input_shape or (None, None, 3), name="input")
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, blocks in enumerate(STAGE_BLOCKS):
        planes = 64 * 2**stage
        inner = planes * CARDINALITY * BASE_WIDTH // 64
        out = planes * 4
        for block in range(blocks):
            x = _bottleneck(
                x,
                inner=inner,
                out=out,
                stride=2 if (block == 0 and stage > 0) else 1,
                project=block == 0,
                name=f"conv{stage + 2}_block{block + 1}",
            )
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model
