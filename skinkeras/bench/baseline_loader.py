"""A straightforward single-process PIL + NumPy loader: the baseline of `skinkeras bench pipeline`.

It is what the papers' reference code does with Keras' `ImageDataGenerator` (paper 001), written
directly: read and decode each file with PIL, resize, then apply the same random augmentation as
the tf.data pipeline (rotation up to 180 degrees, 10 % shift, 10 % zoom, horizontal / vertical
flips, brightness / contrast). It is written to be reasonably fast, not as a straw man: the
geometric steps are composed into ONE affine map applied once by PIL's C code
(`Image.transform(AFFINE, BILINEAR)`, faster than `ImageDataGenerator`'s per-channel
`scipy.ndimage.affine_transform`), and the photometric steps are vectorised NumPy. PIL fills
outside points with black (it has no reflect mode); that does not change the cost.
"""

from __future__ import annotations

import math

import numpy as np


def baseline_batches(paths, image_size: int, batch_size: int, seed: int = 0, augment: bool = True):
    """Yields float32 batches `[B, image_size, image_size, 3]` (0..255) from image paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    batch = []
    for index in order:
        with Image.open(paths[index]) as image:
            image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        if augment:
            image = _random_affine(image, rng)
        array = np.array(image, dtype=np.float32)  # a writable copy
        if augment:
            array = _random_brightness_contrast(array, rng)
        batch.append(array)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _random_affine(image, rng):
    from PIL import Image

    width, height = image.size
    angle = math.radians(rng.uniform(-180, 180))
    shift_x = rng.uniform(-0.1, 0.1) * width
    shift_y = rng.uniform(-0.1, 0.1) * height
    scale = 1.0 + rng.uniform(-0.1, 0.1)
    flip_x = -1.0 if rng.random() < 0.5 else 1.0
    flip_y = -1.0 if rng.random() < 0.5 else 1.0
    # PIL wants the inverse map (output -> input), like ImageProjectiveTransformV3.
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    m00, m01, m10, m11 = flip_x * cos, flip_x * sin, -flip_y * sin, flip_y * cos
    px, py = cx + shift_x, cy + shift_y
    coefficients = (m00, m01, cx - (m00 * px + m01 * py), m10, m11, cy - (m10 * px + m11 * py))
    return image.transform((width, height), Image.AFFINE, coefficients, resample=Image.BILINEAR)


def _random_brightness_contrast(array, rng):
    # In place: (x - mean) * factor + mean + offset, without temporaries.
    factor = rng.uniform(0.8, 1.2)
    mean = array.mean(axis=(0, 1), keepdims=True)
    array -= mean
    array *= factor
    array += mean + rng.uniform(-0.1, 0.1) * 255.0
    return np.clip(array, 0.0, 255.0, out=array)
