"""Shades-of-Gray colour constancy (Finlayson & Trezzi 2004), as used by paper 000 (p = 6).

Paper 000 (EIS + dermoscopy) and Gessert et al. 2018 normalise every dermoscopic image with the
Shades-of-Gray method, Minkowski norm p = 6: the illuminant of channel c is estimated as

    e_c = (mean over pixels of I_c ** p) ** (1 / p)

and each channel is multiplied by `||e|| / (sqrt(3) * e_c)`, so the estimated illuminant becomes
neutral (all three channels equal, same norm) and the overall brightness is kept. Results are
clipped to 0..255.

The function is written in TensorFlow ops so it runs eagerly, inside `tf.data.Dataset.map` and in
exported graphs.
"""

from __future__ import annotations

_EPSILON = 1e-6


def shades_of_gray(image, power: float = 6.0):
    """Colour-constancy normalised copy of `image` (float32, 0..255).

    Args:
        image: RGB image(s), `[H, W, 3]` or `[B, H, W, 3]`, any real or integer dtype, 0..255.
        power: Minkowski norm p (6 in paper 000; 1 is Gray World, large p approaches max-RGB).

    Returns:
        float32 tensor of the same shape, clipped to 0..255.

    Example:
        >>> import numpy as np
        >>> flat = np.tile(np.float32([200, 100, 50]), (4, 4, 1))
        >>> out = shades_of_gray(flat).numpy()
        >>> bool(np.allclose(out[..., 0], out[..., 1], atol=1e-3))
        True
    """
    import tensorflow as tf

    if power <= 0:
        raise ValueError(f"power must be positive. Received: power={power}")
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    # Work in 0..1: 255 ** 6 is fine in float32, but mean of x**p keeps more precision near 1.
    unit = image / 255.0
    mean_power = tf.reduce_mean(tf.pow(unit, power), axis=[-3, -2], keepdims=True)
    illuminant = tf.pow(mean_power, 1.0 / power)  # [..., 1, 1, 3]
    norm = tf.sqrt(tf.reduce_sum(tf.square(illuminant), axis=-1, keepdims=True))
    gain = norm / (tf.sqrt(3.0) * tf.maximum(illuminant, _EPSILON))
    # A black image has no illuminant to estimate: leave it as it is.
    gain = tf.where(norm > _EPSILON, gain, tf.ones_like(gain))
    return tf.clip_by_value(image * gain, 0.0, 255.0)


def shades_of_gray_numpy(image, power: float = 6.0):
    """NumPy reference of `shades_of_gray` (for tests and the PIL baseline loader)."""
    import numpy as np

    image = np.asarray(image, dtype=np.float64)
    unit = image / 255.0
    illuminant = np.mean(unit**power, axis=(-3, -2), keepdims=True) ** (1.0 / power)
    norm = np.sqrt(np.sum(illuminant**2, axis=-1, keepdims=True))
    if np.all(norm <= _EPSILON):
        return image.astype(np.float32)
    gain = norm / (np.sqrt(3.0) * np.maximum(illuminant, _EPSILON))
    return np.clip(image * gain, 0.0, 255.0).astype(np.float32)
