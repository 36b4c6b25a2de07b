"""Random augmentation of image batches (and their masks), composed into ONE affine map per image.

Augmentations follow the papers: rotation up to 180 degrees, shifts of 10 %, zoom of 10 %,
horizontal and vertical flips (the soft-attention reference's ImageDataGenerator settings, paper
001) and random brightness / contrast (paper 000, after Gessert et al. 2018).

Rotation, shift, zoom and flips are composed into a single projective transform per image and
applied once with `tf.raw_ops.ImageProjectiveTransformV3` (bilinear for images, nearest neighbour
for masks, so masks stay binary). Applying the four geometric steps one after another would
interpolate four times and blur. `augment_batch` takes a batch; the pipeline calls it per image
(a batch of one) or per batch, whichever measures faster (see skinkeras.data.pipeline: per image
on a 2-core CPU; `skinkeras bench pipeline` times both).

When the pipeline resizes as well (`crop="resize"`, per image), the resize is folded into the
same warp: `apply_augment_params(..., output_size=...)` warps the decoded image straight to the
output size with `resize_transforms` (the op's inverse map composed with `tf.image.resize`'s
half-pixel scaling), so there is still one resampling pass, not two.

Fill mode: "reflect" by default. Dermoscopic images are mostly skin up to their borders; a constant
(black) fill would paint artificial dark corners that look like a dermatoscope's vignette, which
the colour-constancy and border-cropping steps treat as signal-free. The mask is filled the same
way as the image so the two stay aligned. "constant" (black), "nearest" and "wrap" are accepted.

Randomness is stateless: every function takes an `int32[2]` seed, so a pipeline with a fixed seed
augments identically run after run.
"""

from __future__ import annotations

import dataclasses
import math

FILL_MODES = ("reflect", "constant", "nearest", "wrap")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation (defaults: the papers' settings).

    Args:
        rotation_degrees: rotation angle drawn uniformly in [-r, r].
        shift_fraction: shift drawn uniformly in [-s, s] times the image width / height.
        zoom_fraction: scale drawn uniformly in [1 - z, 1 + z].
        horizontal_flip, vertical_flip: flip each axis with probability 0.5.
        brightness: added offset drawn uniformly in [-b, b] times 255.
        contrast: contrast factor drawn uniformly in [1 - c, 1 + c] around each image's mean.
        fill_mode: how points outside the input are filled (see module docstring).
    """

    rotation_degrees: float = 180.0
    shift_fraction: float = 0.1
    zoom_fraction: float = 0.1
    horizontal_flip: bool = True
    vertical_flip: bool = True
    brightness: float = 0.1
    contrast: float = 0.2
    fill_mode: str = "reflect"

    def __post_init__(self):
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {FILL_MODES}. Received: fill_mode={self.fill_mode!r}")
        for name in ("rotation_degrees", "shift_fraction", "zoom_fraction", "brightness", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if self.zoom_fraction >= 1:
            raise ValueError(f"zoom_fraction must be < 1. Received: zoom_fraction={self.zoom_fraction}")

    @property
    def has_geometry(self) -> bool:
        return bool(
            self.rotation_degrees
            or self.shift_fraction
            or self.zoom_fraction
            or self.horizontal_flip
            or self.vertical_flip
        )


def affine_transforms(angles, shifts_x, shifts_y, scales, flips_x, flips_y, height, width):
    """Inverse-map transforms `float32[B, 8]` for `ImageProjectiveTransformV3` from parameters.

    The forward map of output pixel p from input pixel q, about the image centre c, is
    `p = c + t + s * R(angle) * F * (q - c)`; the op needs its inverse
    `q = c + F * R(-angle) * (p - c - t) / s` (F = diag(flip_x, flip_y), each +1 or -1).

    Args:
        angles: radians, `[B]`; shifts_x / shifts_y: pixels, `[B]`; scales: `[B]` (> 1 zooms in);
        flips_x / flips_y: `[B]` of +1 / -1; height, width: image size (ints or scalar tensors).
    """
    import tensorflow as tf

    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    cos = tf.cos(angles) / scales
    sin = tf.sin(angles) / scales
    m00 = flips_x * cos
    m01 = flips_x * sin
    m10 = -flips_y * sin
    m11 = flips_y * cos
    px = cx + shifts_x
    py = cy + shifts_y
    a2 = cx - (m00 * px + m01 * py)
    b2 = cy - (m10 * px + m11 * py)
    zeros = tf.zeros_like(m00)
    return tf.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)


def random_affine_transforms(batch_size, height, width, seed, config: AugmentConfig = AugmentConfig()):
    """Random inverse-map transforms `float32[B, 8]` drawn from `config`, statelessly from `seed`."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 6)
    shape = tf.reshape(batch_size, [1])

    def uniform(index, half_range):
        return tf.random.stateless_uniform(shape, seeds[index], -half_range, half_range)

    def flip(index, enabled):
        if not enabled:
            return tf.ones(shape)
        return tf.where(tf.random.stateless_uniform(shape, seeds[index]) < 0.5, -1.0, 1.0)

    height_f = tf.cast(height, tf.float32)
    width_f = tf.cast(width, tf.float32)
    angles = uniform(0, math.radians(config.rotation_degrees))
    shifts_x = uniform(1, config.shift_fraction) * width_f
    shifts_y = uniform(2, config.shift_fraction) * height_f
    scales = 1.0 + uniform(3, config.zoom_fraction)
    return affine_transforms(
        angles,
        shifts_x,
        shifts_y,
        scales,
        flip(4, config.horizontal_flip),
        flip(5, config.vertical_flip),
        height,
        width,
    )


def resize_transforms(transforms, input_size, output_size):
    """Composes inverse maps defined on an `output_size` image with the resize from `input_size`.

    `transforms` (`[B, 8]`) map output pixels to points of the image *resized* to `output_size`;
    the result maps them straight to points of the `input_size` image, using the same half-pixel
    centres as `tf.image.resize` (`x_in = (x + 0.5) * W_in / W_out - 0.5`). Warping the original
    with it (`apply_transforms(..., output_size=output_size)`) resizes and warps in ONE
    resampling pass. Sizes are `(height, width)`, ints or int tensors.
    """
    import tensorflow as tf

    input_size = tf.cast(input_size, tf.float32)
    output_size = tf.cast(output_size, tf.float32)
    scale_y = input_size[0] / output_size[0]
    scale_x = input_size[1] / output_size[1]
    transforms = tf.cast(transforms, tf.float32)
    m00, m01, a2, m10, m11, b2, c0, c1 = tf.unstack(transforms, axis=1)
    return tf.stack(
        [
            scale_x * m00,
            scale_x * m01,
            scale_x * (a2 + 0.5) - 0.5,
            scale_y * m10,
            scale_y * m11,
            scale_y * (b2 + 0.5) - 0.5,
            c0,
            c1,
        ],
        axis=1,
    )


def apply_transforms(
    images, transforms, interpolation: str = "bilinear", fill_mode: str = "reflect", output_size=None
):
    """Warps a batch `[B, H, W, C]` with per-image inverse-map transforms `[B, 8]` (one pass).

    The output has the input's size, or `output_size` (`(height, width)`) when given; the
    transforms then map output pixels to input points (see `resize_transforms`). The output has
    the input's dtype (uint8 results are truncated by the op).
    """
    import tensorflow as tf

    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {FILL_MODES}. Received: fill_mode={fill_mode!r}")
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(
            f"interpolation must be 'bilinear' or 'nearest'. Received: interpolation={interpolation!r}"
        )
    images = tf.convert_to_tensor(images)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(transforms, tf.float32),
        output_shape=(
            tf.shape(images)[1:3] if output_size is None else tf.convert_to_tensor(output_size, tf.int32)
        ),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation=interpolation.upper(),
        fill_mode=fill_mode.upper(),
    )


def warp_bilinear_gather(images, transforms, output_size, fill_mode: str = "reflect", input_size=None):
    """`apply_transforms(images, transforms, "bilinear", fill_mode, output_size)` written with
    gathers of each output pixel's 2x2 neighbours, for XLA (`fused_augment_image`); without XLA
    it is slower than the op.

    Same coordinates, fill handling ("reflect" / "nearest": points outside are mapped in, then
    clamped, as the op does) and bilinear weights as `ImageProjectiveTransformV3`; the result is
    float32. "constant" and "wrap" are not handled here (use `apply_transforms`).

    `input_size` (`int32[2]`, `(height, width)`): the images are the top-left part of a larger,
    zero-padded canvas `images`, so that XLA sees one fixed shape whatever the image size.
    """
    import numpy as np
    import tensorflow as tf

    if fill_mode not in ("reflect", "nearest"):
        raise ValueError(f"fill_mode must be 'reflect' or 'nearest' here. Received: fill_mode={fill_mode!r}")
    out_h, out_w = (int(v) for v in output_size)
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    canvas_height, canvas_width, channels = shape[1], shape[2], images.shape[-1]
    if input_size is None:
        height, width = canvas_height, canvas_width
    else:
        height, width = input_size[0], input_size[1]
    grid_y, grid_x = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    xs = tf.constant(grid_x.reshape(1, -1))
    ys = tf.constant(grid_y.reshape(1, -1))
    t = tf.cast(transforms, tf.float32)[:, :, None]  # [B, 8, 1]
    projection = t[:, 6] * xs + t[:, 7] * ys + 1.0
    x = (t[:, 0] * xs + t[:, 1] * ys + t[:, 2]) / projection
    y = (t[:, 3] * xs + t[:, 4] * ys + t[:, 5]) / projection
    width_f = tf.cast(width, tf.float32)
    height_f = tf.cast(height, tf.float32)
    if fill_mode == "reflect":
        x = _reflect_coordinate(x, width_f)
        y = _reflect_coordinate(y, height_f)
    x = tf.clip_by_value(x, 0.0, width_f - 1.0)
    y = tf.clip_by_value(y, 0.0, height_f - 1.0)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    fx = x - x0
    fy = y - y0
    index = tf.cast(y0, tf.int32) * canvas_width + tf.cast(x0, tf.int32)  # [B, N]
    # Four gathers from the flat image, i.e. each output pixel's 2x2 neighbours (at the last row /
    # column of the image the next one is itself, with weight 0): under XLA they fuse with the
    # weighting into one loop, ~3x cheaper than the op on CPU.
    flat = tf.reshape(images, tf.stack([shape[0], canvas_height * canvas_width, channels]))
    x1 = tf.cast(tf.minimum(x0 + 1.0, width_f - 1.0), tf.int32) - tf.cast(x0, tf.int32)
    y1 = (tf.cast(tf.minimum(y0 + 1.0, height_f - 1.0), tf.int32) - tf.cast(y0, tf.int32)) * canvas_width

    def pick(offset):
        return tf.cast(tf.gather(flat, index + offset, batch_dims=1), tf.float32)

    fx = fx[..., None]
    fy = fy[..., None]
    top = pick(0) * (1.0 - fx) + pick(x1) * fx
    bottom = pick(y1) * (1.0 - fx) + pick(y1 + x1) * fx
    out = top * (1.0 - fy) + bottom * fy
    return tf.reshape(out, tf.stack([shape[0], out_h, out_w, channels]))


def fused_augment_image(image, params, output_size, config: AugmentConfig = AugmentConfig()):
    """`apply_augment_params(image[None], params[None], config, output_size)[0]` for ONE image
    `[H, W, 3]` no larger than `output_size`, compiled with XLA into one loop nest.

    The image is zero-padded to an `output_size` canvas so that the XLA function sees a single
    shape (compiled once per output size and config, whatever the image sizes); the warp is
    `warp_bilinear_gather` (same coordinates, fill and weights as `ImageProjectiveTransformV3`),
    then brightness / contrast as in `apply_augment_params`. On the 2-core CPU: 0.56 ms CPU per
    HAM10000 image (200x150 -> 224x224) vs 1.67 ms for the op + photometric ops, one thread.
    Needs `fill_mode` "reflect" or "nearest".
    `params`: one image's parameters (`"transform"` `[8]`, `"contrast"`, `"brightness"` scalars).
    """
    import tensorflow as tf

    out_h, out_w = (int(v) for v in output_size)
    image = tf.convert_to_tensor(image)
    size = tf.shape(image)[:2]
    canvas = tf.pad(image, [[0, out_h - size[0]], [0, out_w - size[1]], [0, 0]])
    canvas = tf.ensure_shape(canvas, [out_h, out_w, 3])
    transform = resize_transforms(params["transform"][None], size, (out_h, out_w))
    run = _fused_augment_function(out_h, out_w, config, image.dtype.name)
    return run(canvas[None], transform, size, params["contrast"][None], params["brightness"][None])[0]


_FUSED_FUNCTIONS = {}


def _fused_augment_function(out_h, out_w, config, dtype_name):
    key = (out_h, out_w, config, dtype_name)
    if key not in _FUSED_FUNCTIONS:
        import tensorflow as tf

        def run(canvas, transform, size, contrast, brightness):
            images = warp_bilinear_gather(
                canvas, transform, (out_h, out_w), config.fill_mode, input_size=size
            )
            return _photometric(images, contrast, brightness, config)

        _FUSED_FUNCTIONS[key] = tf.function(run, jit_compile=True, reduce_retracing=True)
    return _FUSED_FUNCTIONS[key]


def _photometric(images, contrast, brightness, config):
    import tensorflow as tf

    if not (config.contrast or config.brightness):
        return images
    factor = contrast[:, None, None, None]
    offset = brightness[:, None, None, None]
    if config.contrast:
        offset = offset + tf.reduce_mean(images, axis=[1, 2], keepdims=True) * (1.0 - factor)
    return tf.clip_by_value(images * factor + offset, 0.0, 255.0)


def _reflect_coordinate(coordinate, length):
    """`ImageProjectiveTransformV3`'s REFLECT mapping (about -0.5 and length - 0.5), vectorised."""
    import tensorflow as tf

    period = 2.0 * length
    low = tf.where(coordinate < -period, period * tf.floor(-coordinate / period) + coordinate, coordinate)
    low = tf.where(low < -length, low + period, -low - 1.0)
    high = coordinate - period * tf.floor(coordinate / period)
    high = tf.where(high >= length, period - high - 1.0, high)
    return tf.where(coordinate < 0, low, tf.where(coordinate > length - 1.0, high, coordinate))


def random_augment_params(batch_size, height, width, seed, config: AugmentConfig = AugmentConfig()):
    """Random parameters of `batch_size` augmentations, drawn statelessly from an `int32[2]` seed.

    Returns a dict of `"transform"` (`float32[B, 8]`, inverse maps), `"contrast"` (`float32[B]`,
    factors) and `"brightness"` (`float32[B]`, offsets in 0..255 units). Drawing many at once and
    applying them image by image (`apply_augment_params`) keeps the per-image graph to a few ops.
    """
    import tensorflow as tf

    seed = tf.convert_to_tensor(seed)
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    geometry_seed, contrast_seed, brightness_seed = seeds
    shape = tf.reshape(batch_size, [1])
    if config.has_geometry:
        transform = random_affine_transforms(batch_size, height, width, geometry_seed, config)
    else:
        transform = tf.tile(tf.constant([[1.0, 0, 0, 0, 1.0, 0, 0, 0]]), tf.stack([batch_size, 1]))
    contrast = tf.random.stateless_uniform(shape, contrast_seed, 1.0 - config.contrast, 1.0 + config.contrast)
    brightness = tf.random.stateless_uniform(shape, brightness_seed, -config.brightness, config.brightness)
    return {"transform": transform, "contrast": contrast, "brightness": brightness * 255.0}


def apply_augment_params(
    images, params, masks=None, config: AugmentConfig = AugmentConfig(), output_size=None
):
    """Applies `random_augment_params` output to a batch `[B, H, W, 3]` (and masks `[B, H, W, 1]`).

    The photometric step is one multiply-add per pixel: contrast around each image's per-channel
    mean, then the brightness offset, `x * c + (mean * (1 - c) + b)`, clipped to 0..255.

    `output_size` (`(height, width)`): the parameters were drawn for that size, and `images`
    (any size, uint8 or float) are resized to it *by the warp itself*: one resampling pass
    instead of a resize followed by a warp (bilinear; no antialiasing, so use it when enlarging or
    keeping the size). Masks follow with nearest neighbour. The result is float32 either way.
    """
    import tensorflow as tf

    if output_size is not None:
        images = tf.convert_to_tensor(images)
        transform = resize_transforms(params["transform"], tf.shape(images)[1:3], output_size)
        # float32: the op would truncate a uint8 result (and measured slower on uint8).
        images = apply_transforms(
            tf.cast(images, tf.float32), transform, "bilinear", config.fill_mode, output_size=output_size
        )
        if masks is not None:
            masks = tf.cast(masks, tf.float32)
            masks = apply_transforms(masks, transform, "nearest", config.fill_mode, output_size=output_size)
    images = tf.cast(images, tf.float32)
    if config.has_geometry and output_size is None:
        images = apply_transforms(images, params["transform"], "bilinear", config.fill_mode)
        if masks is not None:
            masks = tf.cast(masks, tf.float32)
            masks = apply_transforms(masks, params["transform"], "nearest", config.fill_mode)
    if config.contrast or config.brightness:
        factor = params["contrast"][:, None, None, None]
        offset = params["brightness"][:, None, None, None]
        if config.contrast:
            offset = offset + tf.reduce_mean(images, axis=[1, 2], keepdims=True) * (1.0 - factor)
        images = tf.clip_by_value(images * factor + offset, 0.0, 255.0)
    if masks is None:
        return images
    return images, masks


def random_brightness_contrast(images, seed, brightness: float = 0.1, contrast: float = 0.2):
    """Random brightness offset and contrast factor per image of a batch `[B, H, W, C]` (0..255)."""
    import tensorflow as tf

    config = AugmentConfig(
        rotation_degrees=0, shift_fraction=0, zoom_fraction=0, horizontal_flip=False, vertical_flip=False,
        brightness=brightness, contrast=contrast,
    )
    shape = tf.shape(images)
    params = random_augment_params(shape[0], shape[1], shape[2], seed, config)
    return apply_augment_params(images, params, config=config)


def augment_batch(images, seed, masks=None, config: AugmentConfig = AugmentConfig()):
    """Augments a batch of images (float32 `[B, H, W, 3]`, 0..255) and, jointly, their masks.

    The same geometric transform is applied to an image and its mask (nearest neighbour for the
    mask); brightness / contrast only touch the image.

    Returns:
        The augmented images (float32, 0..255), or `(images, masks)` when masks are given.
    """
    import tensorflow as tf

    shape = tf.shape(images)
    params = random_augment_params(shape[0], shape[1], shape[2], seed, config)
    return apply_augment_params(images, params, masks=masks, config=config)
