"""Random crops for training and the deterministic multi-crop grid for evaluation (paper 000).

Paper 000 (after Gessert et al. 2018, "unscaled multi-crop evaluation") trains on random 224x224
crops and evaluates "with 36 evenly spread crops across the image which covers the entire image
with large overlap", averaging the crops' predictions. We read this as ONE scale (unscaled: the
crops are taken from the image at its working resolution) and a 6 x 6 grid: the top-left corners
are evenly spaced from 0 to H - h along the height and 0 to W - w along the width, so the first and
last crops touch the image borders and together they cover every pixel. No flips are added (the
paper mentions none for evaluation). `grid` makes other layouts possible.

An image smaller than the crop is first resized (aspect ratio kept) so that its shorter side
equals the crop's larger side.
"""

from __future__ import annotations

from skinkeras.preprocessing.crops import _pair

PAPER_000_GRID = (6, 6)


def ensure_min_size(image, crop_size):
    """Upsizes `[H, W, C]` (aspect ratio kept) when it is smaller than `crop_size` in either axis."""
    import tensorflow as tf

    crop_h, crop_w = _pair(crop_size, "crop_size")
    shape = tf.shape(image)
    too_small = tf.logical_or(shape[0] < crop_h, shape[1] < crop_w)
    image = tf.cast(image, tf.float32)
    return tf.cond(
        too_small,
        lambda: _upsize(image, crop_h, crop_w),
        lambda: image,
    )


def _upsize(image, crop_h, crop_w):
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.maximum(crop_h / shape[0], crop_w / shape[1])
    new_size = tf.maximum(tf.cast(tf.math.ceil(shape * scale), tf.int32), [crop_h, crop_w])
    return tf.image.resize(image, new_size)  # upsampling: antialiasing changes nothing


def random_crop(image, crop_size, seed):
    """A random `crop_size` crop of `[H, W, C]` (stateless, from an `int32[2]` seed)."""
    import tensorflow as tf

    crop_h, crop_w = _pair(crop_size, "crop_size")
    channels = tf.shape(image)[2]
    return tf.image.stateless_random_crop(image, tf.stack([crop_h, crop_w, channels]), seed=seed)


def center_crop(image, crop_size):
    """The centred `crop_size` crop of `[H, W, C]` (which must be at least that large)."""
    import tensorflow as tf

    crop_h, crop_w = _pair(crop_size, "crop_size")
    shape = tf.shape(image)
    top = (shape[0] - crop_h) // 2
    left = (shape[1] - crop_w) // 2
    return image[top : top + crop_h, left : left + crop_w]


def grid_offsets(length, crop_length, count):
    """`count` top-left offsets evenly spread from 0 to `length - crop_length` (int32)."""
    import tensorflow as tf

    last = tf.cast(length - crop_length, tf.float32)
    if count == 1:
        return tf.reshape(tf.cast(tf.round(last / 2.0), tf.int32), [1])
    return tf.cast(tf.round(tf.linspace(0.0, last, count)), tf.int32)


def multi_crop(image, crop_size, grid=PAPER_000_GRID):
    """The evaluation crops of one image, as a batch `[rows * cols, h, w, C]` (float32).

    Crops are ordered row by row (top-left first). Feed the batch to the model and average the
    predictions over axis 0.

    Example:
        >>> import numpy as np
        >>> crops = multi_crop(np.zeros((300, 400, 3), np.float32), 224)
        >>> tuple(crops.shape)
        (36, 224, 224, 3)
    """
    import tensorflow as tf

    crop_h, crop_w = _pair(crop_size, "crop_size")
    rows, cols = _pair(grid, "grid")
    image = ensure_min_size(tf.convert_to_tensor(image), (crop_h, crop_w))
    shape = tf.shape(image)
    tops = grid_offsets(shape[0], crop_h, rows)
    lefts = grid_offsets(shape[1], crop_w, cols)
    tops = tf.repeat(tops, cols)
    lefts = tf.tile(lefts, [rows])
    # Gather rows then columns: exact pixel copies, all crops in one op each.
    row_index = tops[:, None] + tf.range(crop_h)[None, :]
    col_index = lefts[:, None] + tf.range(crop_w)[None, :]
    strips = tf.gather(image, row_index)  # [N, h, W, C]
    return tf.gather(strips, col_index, axis=2, batch_dims=1)
