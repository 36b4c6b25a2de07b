"""The lesion-crop stage in TensorFlow ops, for the two-stage SavedModel (crop inside the graph).

The same steps as the Python crop (`skinkeras.segmentation.crop`, which trained the members):
segmenter at its input size on the resized image, probability map resized back (bilinear),
threshold, the largest 8-connected component, its box grown by the margin, the crop resized to the
members' input (area averaging when shrinking, bilinear when enlarging, as OpenCV's INTER_AREA /
INTER_LINEAR) and rounded to 8 bits (the training crops were 8-bit PNGs). Resampling kernels and
rounding differ slightly from OpenCV's; the export's verification reports the effect on the
probabilities.

Connected components: every foreground pixel starts with its own raster index; each round takes
the smallest index among its 8 neighbours and then jumps through the labels (a pixel adopts its
label's label), so labels reach each component's first pixel in a few dozen rounds instead of one
per pixel of the component's width. Ties in size go to the component met first in raster order,
as scipy's labelling does.
"""

from __future__ import annotations


def _neighbour_min(labels, background):
    """The minimum over each pixel's 3x3 neighbourhood of an int32 `[H, W]` label image."""
    import tensorflow as tf

    padded = tf.pad(labels, [[1, 1], [1, 1]], constant_values=background)
    height, width = tf.shape(labels)[0], tf.shape(labels)[1]
    result = labels
    for dy in range(3):
        for dx in range(3):
            if dy == 1 and dx == 1:
                continue
            result = tf.minimum(result, padded[dy:dy + height, dx:dx + width])
    return result


def largest_component(mask):
    """The largest 8-connected component of a boolean `[H, W]` mask (all False when empty)."""
    import tensorflow as tf

    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    size = height * width
    background = size + 1
    index = tf.reshape(tf.range(1, size + 1, dtype=tf.int32), [height, width])
    labels = tf.where(mask, index, background)

    def step(labels, _):
        hooked = tf.where(mask, _neighbour_min(labels, background), background)
        flat = tf.concat([[0], tf.reshape(hooked, [-1]), [background]], axis=0)
        jumped = tf.gather(flat, hooked)  # each pixel adopts its label's label
        new = tf.where(mask, tf.minimum(hooked, jumped), background)
        return new, tf.reduce_any(new != labels)

    labels, _ = tf.while_loop(lambda _, changed: changed, step, (labels, tf.constant(True)),
                              maximum_iterations=size + 1)
    counts = tf.math.unsorted_segment_sum(tf.ones([size], tf.int32), tf.reshape(labels, [-1]), size + 2)
    counts = tf.tensor_scatter_nd_update(counts, [[size + 1]], [0])  # background is no component
    best = tf.argmax(counts, output_type=tf.int32)  # the smallest label among the largest
    return tf.logical_and(mask, tf.equal(labels, best)) & tf.reduce_any(mask)


def lesion_box(mask, margin: float):
    """`(box int32[4] (top, left, bottom, right), found)` of the mask's largest component grown
    by `margin` times its height / width per side (rounded half to even, as Python's round)."""
    import tensorflow as tf

    from skinkeras.preprocessing.crops import mask_bounding_box

    component = largest_component(mask)
    box, found = mask_bounding_box(tf.cast(component, tf.float32), margin=0.0)
    height, width = tf.shape(mask)[0], tf.shape(mask)[1]
    grow_y = tf.cast(tf.round(margin * tf.cast(box[2] - box[0], tf.float64)), tf.int32)
    grow_x = tf.cast(tf.round(margin * tf.cast(box[3] - box[1], tf.float64)), tf.int32)
    grown = tf.stack([tf.maximum(box[0] - grow_y, 0), tf.maximum(box[1] - grow_x, 0),
                      tf.minimum(box[2] + grow_y, height), tf.minimum(box[3] + grow_x, width)])
    return tf.where(found, grown, tf.stack([0, 0, height, width])), found


def resize_like_opencv(image, size: int):
    """`[H, W, 3]` -> float32 `[size, size, 3]` rounded to 0..255 integers, as `cv2.resize` to
    `size` x `size` with the Python crop's choice: INTER_AREA when a side shrinks, else INTER_LINEAR.

    OpenCV averages pixel areas only when BOTH sides shrink (TF's area resize); when one side
    shrinks and the other grows, its INTER_AREA is a bilinear variant (`_opencv_area_weights`,
    applied as two matrices); when neither shrinks, bilinear with half-pixel centres. Measured
    against OpenCV on random images of all three kinds: within 1 grey level (its 8-bit fixed point).
    """
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    both_shrink = tf.logical_and(height >= size, width >= size)
    neither_shrinks = tf.logical_and(height <= size, width <= size)

    def emulated():
        rows, cols = _opencv_area_weights(height, size), _opencv_area_weights(width, size)
        return tf.einsum("oh,hwc,pw->opc", rows, image, cols)

    resized = tf.case([(neither_shrinks, lambda: tf.image.resize(image, (size, size), method="bilinear")),
                       (both_shrink, lambda: tf.image.resize(image, (size, size), method="area"))],
                      default=emulated)
    return tf.round(tf.clip_by_value(resized, 0.0, 255.0))


def _opencv_area_weights(n_in, n_out: int):
    """float32 `[n_out, n_in]`: OpenCV's INTER_AREA weights along one side when the other side
    grows: output d reads source floor(d * s) and the next one, s = 1 / (n_out / n_in) in double,
    the fraction (d + 1) - (floor(d * s) + 1) n_out / n_in in float32, as OpenCV computes them
    (the double / float rounding picks the source row where d * s is an integer)."""
    import tensorflow as tf

    inv = tf.cast(n_out, tf.float64) / tf.cast(n_in, tf.float64)
    scale = 1.0 / inv
    d = tf.range(n_out, dtype=tf.float64)
    start = tf.floor(d * scale)
    fraction = tf.cast((d + 1.0) - (start + 1.0) * inv, tf.float32)
    fraction = tf.where(fraction <= 0.0, 0.0, fraction - tf.floor(fraction))
    start = tf.cast(start, tf.int32)
    fraction = tf.where(start < 0, 0.0, fraction)
    start = tf.maximum(start, 0)
    last = start >= n_in - 1
    fraction = tf.where(last, 0.0, fraction)
    start = tf.where(last, n_in - 1, start)
    nxt = tf.minimum(start + 1, n_in - 1)
    return (tf.one_hot(start, n_in) * (1.0 - fraction)[:, None]
            + tf.one_hot(nxt, n_in) * fraction[:, None])


def crop_lesion(image, segmenter, segmenter_size: int, crop_size: int, margin: float, threshold: float = 0.5):
    """One uint8 `[H, W, 3]` image -> (crop float32 `[crop_size, crop_size, 3]`, box, found)."""
    import tensorflow as tf

    from skinkeras.preprocessing.crops import resize

    small = resize(image, (segmenter_size, segmenter_size))
    probabilities = tf.cast(segmenter(small[None], training=False), tf.float32)[0]
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    full = tf.image.resize(probabilities, tf.stack([height, width]), method="bilinear")[..., 0]
    box, found = lesion_box(full > threshold, margin)
    crop = image[box[0]:box[2], box[1]:box[3]]
    return resize_like_opencv(crop, crop_size), box, found
