"""Crops and resizing in TensorFlow ops: dark borders, centre square, mask bounding box.

- Dark borders / vignettes: paper 000 "crop the lesions to cut out zero-signal (black) parts of the
  image" (done by hand there; automatically here). Leading and trailing rows / columns whose mean
  intensity is below a threshold are removed. For a circular dermatoscope vignette this gives the
  bounding box of the bright disc, because a row through the disc's edge already has a chord of
  bright pixels long enough to lift its mean above the threshold only a pixel or so inside the
  disc. Dark rows *inside* the image are kept, and an image that is dark everywhere is returned
  unchanged (never cropped to nothing).
- Centre crop of the largest square: paper 004 (multimodal late fusion).
- Crop to a lesion mask's bounding box with a margin: paper 002 (two-stage ensemble), which crops
  the box of the U-Net's predicted mask before classification.

Every op works on one image `[H, W, C]` eagerly, inside `tf.data.Dataset.map`, and in graphs.
"""

from __future__ import annotations


def crop_dark_borders(image, threshold: float = 20.0):
    """Removes dark (zero-signal) rows and columns at the image edges.

    Args:
        image: `[H, W, C]` image, 0..255.
        threshold: a row / column at the edge is dark when its mean intensity (over its pixels and
            channels) is below this.

    Returns:
        The cropped image (same dtype); the whole image when no row or column is bright.
    """

    box = dark_border_box(image, threshold)
    return image[box[0] : box[2], box[1] : box[3]]


def dark_border_box(image, threshold: float = 20.0):
    """`int32[4]` box `(top, left, bottom, right)` (bottom / right exclusive) of `crop_dark_borders`."""
    import tensorflow as tf

    gray = tf.reduce_mean(tf.cast(image, tf.float32), axis=-1)
    top, bottom = _bright_span(tf.reduce_mean(gray, axis=1) >= threshold)
    left, right = _bright_span(tf.reduce_mean(gray, axis=0) >= threshold)
    return tf.stack([top, left, bottom, right])


def _bright_span(bright):
    """First and one-past-last True index of a boolean vector; the full range when none is True."""
    import tensorflow as tf

    length = tf.shape(bright, out_type=tf.int32)[0]
    as_int = tf.cast(bright, tf.int32)
    first = tf.argmax(as_int, output_type=tf.int32)
    last = length - tf.argmax(tf.reverse(as_int, [0]), output_type=tf.int32)
    any_bright = tf.reduce_any(bright)
    return tf.where(any_bright, first, 0), tf.where(any_bright, last, length)


def center_square_crop(image):
    """The largest centred square of an `[H, W, C]` image."""
    import tensorflow as tf

    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top = (shape[0] - side) // 2
    left = (shape[1] - side) // 2
    return image[top : top + side, left : left + side]


def mask_bounding_box(mask, margin: float = 0.1, threshold: float = 0.5):
    """Bounding box of a lesion mask, enlarged by a margin.

    Args:
        mask: `[H, W]` or `[H, W, 1]`, lesion where `mask > threshold`.
        margin: added on each side, as a fraction of the box's height / width; the box is clipped
            to the image.
        threshold: foreground threshold.

    Returns:
        `(box, found)`: `int32[4]` `(top, left, bottom, right)` (bottom / right exclusive) and a
        boolean scalar; for an empty mask the box is the whole image and `found` is False.
    """
    import tensorflow as tf

    if margin < 0:
        raise ValueError(f"margin must be >= 0. Received: margin={margin}")
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank == 3:
        mask = mask[..., 0]
    foreground = tf.cast(mask, tf.float32) > threshold
    height = tf.shape(foreground)[0]
    width = tf.shape(foreground)[1]
    top, bottom = _bright_span(tf.reduce_any(foreground, axis=1))
    left, right = _bright_span(tf.reduce_any(foreground, axis=0))
    found = tf.reduce_any(foreground)
    pad_y = tf.cast(tf.round(margin * tf.cast(bottom - top, tf.float32)), tf.int32)
    pad_x = tf.cast(tf.round(margin * tf.cast(right - left, tf.float32)), tf.int32)
    box = tf.stack(
        [
            tf.maximum(top - pad_y, 0),
            tf.maximum(left - pad_x, 0),
            tf.minimum(bottom + pad_y, height),
            tf.minimum(right + pad_x, width),
        ]
    )
    return box, found


def crop_to_mask(image, mask, margin: float = 0.1, threshold: float = 0.5):
    """Crops `image` (and `mask`) to the mask's bounding box plus a margin (paper 002).

    Returns:
        `(image_crop, mask_crop, found)`; with an empty mask the crops are the whole image and
        `found` is False.
    """
    box, found = mask_bounding_box(mask, margin=margin, threshold=threshold)
    return (
        image[box[0] : box[2], box[1] : box[3]],
        mask[box[0] : box[2], box[1] : box[3]],
        found,
    )


def resize(image, size, method: str = "bilinear"):
    """Resizes an `[H, W, C]` or `[B, H, W, C]` image to `size = (height, width)` as float32.

    Bilinear, antialiased when shrinking (HAM10000 originals are 600x450, models take 224..600);
    use `method="nearest"` for masks so they stay binary.
    """
    import tensorflow as tf

    height, width = _pair(size, "size")
    image = tf.cast(image, tf.float32)
    if method == "nearest":
        return tf.image.resize(image, (height, width), method="nearest")
    return _resize_antialias_when_shrinking(image, tf.constant([height, width]), method)


def _resize_antialias_when_shrinking(image, new_size, method):
    """Antialiasing only matters when shrinking; upsampling without it is 5x cheaper on CPU."""
    import tensorflow as tf

    shrinking = tf.reduce_any(tf.shape(image)[-3:-1] > new_size)
    return tf.cond(
        shrinking,
        lambda: tf.image.resize(image, new_size, method=method, antialias=True),
        lambda: tf.image.resize(image, new_size, method=method),
    )


def shrink_to_fit(image, size):
    """`resize(image, size)` when `image` (`[H, W, C]`) is larger than `size` in either dimension,
    else `image` unchanged (any size, its dtype).

    For the fused resize + warp (`skinkeras.preprocessing.augment.apply_augment_params` with
    `output_size`): the warp does not antialias, so an image it would shrink is first resized with
    antialiasing (as `resize` does); one it enlarges or keeps is left to the warp. A uint8 image
    stays uint8 (rounded).
    """
    import tensorflow as tf

    height, width = _pair(size, "size")
    image = tf.convert_to_tensor(image)
    dtype = image.dtype

    def shrink():
        resized = resize(image, (height, width))
        if dtype.is_integer:
            resized = tf.round(tf.clip_by_value(resized, dtype.min, dtype.max))
        return tf.cast(resized, dtype)

    shrinking = tf.reduce_any(tf.shape(image)[:2] > tf.constant([height, width]))
    return tf.cond(shrinking, shrink, lambda: image)


def resize_shorter_side(image, shorter_side: int, method: str = "bilinear"):
    """Resizes an `[H, W, C]` image, keeping its aspect ratio, so that min(H, W) == shorter_side."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = float(shorter_side) / tf.reduce_min(shape)
    new_size = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), shorter_side)
    image = tf.cast(image, tf.float32)
    if method == "nearest":
        return tf.image.resize(image, new_size, method="nearest")
    return _resize_antialias_when_shrinking(image, new_size, method)


def _pair(value, name):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) <= 0:
        raise ValueError(f"{name} must be a positive int or (height, width). Received: {name}={value}")
    return value
