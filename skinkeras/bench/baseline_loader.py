"""A straightforward single-process PIL + NumPy loader: the baseline of `skinkeras bench pipeline`.

It is what the papers' reference code does with Keras' `ImageDataGenerator` (paper 001), written
directly: read and decode each file with PIL, resize, then apply the same random augmentation as
the tf.data pipeline (rotation up to 180 degrees, 10 % shift, 10 % zoom, horizontal / vertical
flips, brightness / contrast). It is written to be reasonably fast, not as a straw man: the
geometric steps are composed into ONE affine map applied once by PIL's C code
(`Image.transform(AFFINE, BILINEAR)`, faster than `ImageDataGenerator`'s per-channel
`scipy.ndimage.affine_transform`), and the photometric steps are vectorised NumPy. PIL fills
outside points with black (it has no reflect mode); that does not change the cost.

`backend="scipy"` instead warps exactly as Keras' `ImageDataGenerator.apply_affine_transform`
does (what the papers' code runs): `scipy.ndimage.affine_transform` per channel, order 1,
fill mode "nearest". It is the slower of the two and is offered for comparison only.
"""

from __future__ import annotations

import math

import numpy as np


BACKENDS = ("pil", "scipy")


def baseline_batches(
    paths, image_size: int, batch_size: int, seed: int = 0, augment: bool = True, backend: str = "pil"
):
    """Yields float32 batches `[B, image_size, image_size, 3]` (0..255) from image paths."""
    from PIL import Image

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}. Received: backend={backend!r}")

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    batch = []
    for index in order:
        with Image.open(paths[index]) as image:
            image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        if augment and backend == "pil":
            image = _random_affine(image, rng)
        array = np.array(image, dtype=np.float32)  # a writable copy
        if augment and backend == "scipy":
            array = _random_affine_scipy(array, rng)
        if augment:
            array = _random_brightness_contrast(array, rng)
        batch.append(array)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _random_inverse_map(width, height, rng):
    """(m00, m01, a2, m10, m11, b2): output (x, y) -> input, as in skinkeras.preprocessing.augment."""
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
    return (m00, m01, cx - (m00 * px + m01 * py), m10, m11, cy - (m10 * px + m11 * py))


def _random_affine(image, rng):
    from PIL import Image

    coefficients = _random_inverse_map(image.size[0], image.size[1], rng)
    return image.transform(image.size, Image.AFFINE, coefficients, resample=Image.BILINEAR)


def _random_affine_scipy(array, rng):
    from scipy import ndimage

    height, width = array.shape[:2]
    m00, m01, a2, m10, m11, b2 = _random_inverse_map(width, height, rng)
    # ndimage works in (row, col) = (y, x): input = matrix @ output + offset.
    matrix = np.array([[m11, m10], [m01, m00]])
    offset = np.array([b2, a2])
    channels = [
        ndimage.affine_transform(array[..., c], matrix, offset, order=1, mode="nearest")
        for c in range(array.shape[-1])
    ]
    return np.stack(channels, axis=-1)


def _random_brightness_contrast(array, rng):
    # In place: (x - mean) * factor + mean + offset, without temporaries.
    factor = rng.uniform(0.8, 1.2)
    mean = array.mean(axis=(0, 1), keepdims=True)
    array -= mean
    array *= factor
    array += mean + rng.uniform(-0.1, 0.1) * 255.0
    return np.clip(array, 0.0, 255.0, out=array)
