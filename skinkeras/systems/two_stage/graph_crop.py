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
    """`[H, W, 3]` -> float32 `[size, size, 3]` rounded to 0..255 integers: area averaging when
    either side shrinks (INTER_AREA), else bilinear with half-pixel centres (INTER_LINEAR)."""
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    shrinking = tf.reduce_any(tf.shape(image)[:2] > size)
    resized = tf.cond(shrinking,
                      lambda: tf.image.resize(image, (size, size), method="area"),
                      lambda: tf.image.resize(image, (size, size), method="bilinear"))
    return tf.round(tf.clip_by_value(resized, 0.0, 255.0))


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
