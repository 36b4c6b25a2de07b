"""tf.data pipelines that stream a `SampleTable` from its file paths (never the pixels in memory).

Element contract (docs/ARCHITECTURE.md):

- classification: `({"image": float32[H, W, 3] in 0..255, "metadata": float32[F]}, label)`, with
  `label` one-hot float32 `[num_classes]` (or int32 index with `label_mode="index"`) and
  `"metadata"` present only when a `MetadataEncoding` is given;
- segmentation: `{"image": float32[H, W, 3], "mask": float32[H, W, 1] in {0, 1}}`.

Stages (training):

1. the table is pre-checked: unreadable files are excluded and logged by image id
   ("skipped N unreadable images: ..."); `ignore_errors` (with a logged warning) stays as a last
   safety net for files that break between the check and the read;
2. file paths are shuffled (cheap: strings, the whole table in the buffer), then read and decoded
   in parallel (`tf.io.decode_image`, 3 channels, 16-bit PNGs reduced to 8 bits), optionally
   colour-normalised (Shades of Gray, p = 6), cleared of dark borders, cropped (centre square or
   lesion-mask box) and resized;
3. optional cache (memory or file) of these deterministic results, then a shuffle buffer;
4. per image: a random crop (`crop="random"`) and, by default, the augmentation: one composed
   affine warp (rotation / shift / zoom / flips) and brightness / contrast. Without a cache or
   class-balanced sampling, stages 2 and 4 run in ONE map call per image (the random streams are
   zipped with the file paths before the read, so each image gets the same draws either way).

Fused resize (`fused_resize=True`, default; `crop="resize"` with per-image augmentation in
training): the decoded uint8 image is not resized in stage 2 (only shrunk, with antialiasing, when
it is larger than the output); the warp of stage 4 maps it straight to the output size, its
inverse map including the output -> input scaling (`skinkeras.preprocessing.augment.
resize_transforms`). One bilinear resampling pass instead of two (resize, then warp): the same
result within interpolation error (mean 0.2 grey levels on HAM10000, see the tests), less work,
and a cache holds the small uint8 decoded images instead of float32 ones at the output size.
With fill mode "reflect" / "nearest" the warp and brightness / contrast of an image run as ONE
XLA-compiled function (`skinkeras.preprocessing.augment.fused_augment_image`: the image padded to
a fixed canvas, four gathers per output pixel; 0.56 vs 1.67 ms CPU per image with the op, one
thread); `_FUSED_XLA = False` uses the op. Every other mode resizes in stage 2 as before.
`skinkeras bench pipeline --root ../shared/data/ham10000 --image-size 224 --repeats 3` on the
2-core machine, median images/s over all 7,993 images: 1,069 before (2.3x the PIL loader; 543
images per CPU-second); with the fused XLA warp 1,619 and 2,235 (3.6x, 5.2x; about 1,300 images
per CPU-second), the spread from runs stuck at ~1,620 with tf.data's autotuner; with the
autotuner off (below) 2,118 (4.8x).
5. batching, then per batch: metadata missing-value augmentation (p = 0.1 per property) and
   encoding, labels;
6. prefetch.

Per image or per batch? The warp can run once per image (`augment_on="image"`, default; the
random parameters are still drawn 64 at a time so the per-image graph stays a few ops) or once per
batch (`augment_on="batch"`, one `ImageProjectiveTransformV3` call for 32 images). On the 2-core
CPU machine this was built on (shared, so timings varied run to run), per image was the faster
in most runs of `skinkeras bench pipeline --root ../shared/data/ham10000` (224 px, batch 32,
1,000 images: 885 vs 449, 561 vs 459, 517 vs 200 images/s; one 3-repeat run had medians of 404
vs 463 images/s but 511 vs 453 images per CPU-second, the measure that load from other processes
disturbs least). Our reading: tf.data spreads the small per-image warps over its thread pool and
overlaps them with decoding, while a 19 MB batch warp waits for the whole batch and leaves the CPU
cache. tf.data runs on the CPU whatever the accelerator; the benchmark reports both modes.

Class-balanced sampling draws from one repeated, shuffled dataset per class with equal weights
(`tf.data.Dataset.sample_from_datasets`); an epoch is then `len(table)` samples.
"""

from __future__ import annotations

import logging

from skinkeras.data.metadata import DEFAULT_MISSING_RATE, MetadataEncoding, random_missing
from skinkeras.data.table import SampleTable
from skinkeras.preprocessing.augment import (
    AugmentConfig,
    apply_augment_params,
    augment_batch,
    fused_augment_image,
)
from skinkeras.preprocessing.crops import (
    _pair,
    center_square_crop,
    crop_dark_borders,
    crop_to_mask,
    resize,
    resize_shorter_side,
    shrink_to_fit,
)

logger = logging.getLogger(__name__)

CROP_MODES = ("resize", "center_square", "random", "mask")
LABEL_MODES = ("one_hot", "index")
AUGMENT_ON = ("batch", "image")
AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at module import
_FUSED_XLA = True  # fused resize + warp: the XLA-compiled gather warp (False: the TF op)
_TF_DATA_AUTOTUNE = False  # classification datasets: see the end of make_classification_dataset


def make_classification_dataset(
    table: SampleTable,
    *,
    image_size,
    batch_size: int,
    training: bool,
    metadata: MetadataEncoding | None = None,
    augment: bool = True,
    color_constancy: bool = False,
    crop: str = "resize",
    remove_dark_borders: bool = False,
    balanced_sampling: bool = False,
    cache=None,
    shuffle_buffer: int = 1024,
    seed: int = 0,
    label_mode: str = "one_hot",
    num_parallel_calls: int = AUTOTUNE,
    drop_remainder: bool | None = None,
    augment_config: AugmentConfig = AugmentConfig(),
    augment_on: str = "image",
    metadata_missing_rate: float = DEFAULT_MISSING_RATE,
    mask_margin: float = 0.1,
    check_images: bool = True,
    fused_resize: bool = True,
    with_ids: bool = False,
):
    """A batched classification dataset streaming `table`'s images from disk.

    Args:
        table: the samples (see `skinkeras.data.table`).
        image_size: model input size, int or `(height, width)`.
        batch_size: samples per batch.
        training: shuffle, random crops, augmentation and metadata dropout when True; a fixed
            order and deterministic crops when False.
        metadata: encoding of age / sex / site; adds `features["metadata"]`.
        augment: geometric + photometric augmentation (training only).
        color_constancy: Shades-of-Gray (p = 6) normalisation of every image (paper 000).
        crop: "resize" (whole image resized), "center_square" (largest centred square, paper 004),
            "random" (shorter side resized to the image size, then a random crop in training and
            the centre crop otherwise; paper 000), "mask" (lesion-mask box + `mask_margin`, paper
            002; rows without a mask use the whole image).
        remove_dark_borders: crop black borders / vignettes first (paper 000).
        balanced_sampling: equal probability per class (training only).
        cache: None, "memory", or a file path prefix for `Dataset.cache`.
        shuffle_buffer: size of the shuffle buffer after a cache.
        seed: seed of every random choice.
        label_mode: "one_hot" (float32) or "index" (int32).
        num_parallel_calls: parallel decode calls (default autotune).
        drop_remainder: drop a last smaller batch; default: True when training.
        augment_config: ranges of the augmentation.
        augment_on: "image" (default, measured faster on CPU) or "batch" (one warp op per batch).
        metadata_missing_rate: training-time probability of setting each property missing.
        mask_margin: margin around the mask box for `crop="mask"`, as a fraction of the box size.
        check_images: pre-check files and skip unreadable ones (logged); False trusts the table.
        fused_resize: with `crop="resize"` and per-image augmentation in training, resize and warp
            in one resampling pass (the decoded image is warped straight to `image_size`; images
            larger than it are first shrunk with antialiasing). False: resize, then warp (the
            path every other mode takes).
        with_ids: elements are `(features, label, image_id)`: which rows survived the decoder
            (for predictions files).
    """
    import tensorflow as tf

    height, width = _pair(image_size, "image_size")
    _check_choice("crop", crop, CROP_MODES)
    _check_choice("label_mode", label_mode, LABEL_MODES)
    _check_choice("augment_on", augment_on, AUGMENT_ON)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive. Received: batch_size={batch_size}")
    if drop_remainder is None:
        drop_remainder = training
    samples = _usable_samples(table, check_images)
    num_classes = table.num_classes
    augment_per_image = training and augment and augment_on == "image"
    fuse_resize = fused_resize and augment_per_image and crop == "resize" and augment_config.has_geometry

    def load(record):
        # Fused: keep the decoded uint8 image (small to cache); the warp resizes it.
        image = read_image(record["image_path"], dtype="uint8" if fuse_resize else "float32")
        if color_constancy:
            from skinkeras.preprocessing.color import shades_of_gray

            image = shades_of_gray(image)
        if remove_dark_borders:
            image = crop_dark_borders(image)
        if crop == "mask":
            mask = read_mask_or_empty(record["mask_path"], tf.shape(image)[:2])
            image, _, _ = crop_to_mask(image, mask, margin=mask_margin)
        elif crop == "center_square":
            image = center_square_crop(image)
        if crop == "random":
            image = resize_shorter_side(image, max(height, width))
        elif fuse_resize:
            image = shrink_to_fit(image, (height, width))
        else:
            image = resize(image, (height, width))
        element = {
            "image": image,
            "label": record["label_index"],
            "age": record["age"],
            "sex": record["sex"],
            "site": record["site"],
        }
        if with_ids:
            element["image_id"] = record["image_id"]
        return element

    def crop_one(element, image_seed):
        if crop == "random":
            if training:
                image = tf.image.stateless_random_crop(element["image"], [height, width, 3], seed=image_seed)
            else:
                from skinkeras.preprocessing.multicrop import center_crop

                image = center_crop(element["image"], (height, width))
            element = dict(element, image=tf.ensure_shape(image, [height, width, 3]))
        return element

    def finish_batch(batch, batch_seed):
        image_seed, metadata_seed = tf.unstack(tf.random.experimental.stateless_split(batch_seed, 2))
        image = batch["image"]
        if training and augment and augment_on == "batch":
            image = augment_batch(image, image_seed, config=augment_config)
        features = {"image": image}
        if metadata is not None:
            age, sex, site = batch["age"], batch["sex"], batch["site"]
            if training and metadata_missing_rate > 0:
                age, sex, site = random_missing(age, sex, site, metadata_seed, metadata_missing_rate)
            features["metadata"] = metadata.encode(age, sex, site)
        label = tf.cast(batch["label"], tf.int32)
        if label_mode == "one_hot":
            label = tf.one_hot(label, num_classes, dtype=tf.float32)
        if with_ids:
            return features, label, batch["image_id"]
        return features, label

    def augment_one(element, params):
        if fuse_resize and augment_config.fill_mode in ("reflect", "nearest") and _FUSED_XLA:
            image = fused_augment_image(element["image"], params, (height, width), augment_config)
            return dict(element, image=tf.ensure_shape(image, [height, width, 3]))
        # augment_on="image": parameters drawn 64 at a time (_augment_params), applied to a batch of one.
        params = {key: value[None] for key, value in params.items()}
        output_size = (height, width) if fuse_resize else None
        image = apply_augment_params(
            element["image"][None], params, config=augment_config, output_size=output_size
        )
        return dict(element, image=tf.ensure_shape(image[0], [height, width, 3]))

    # Per-image random streams, zipped with the elements: crop seeds and augmentation parameters.
    streams = []
    if crop == "random":
        streams.append(_seed_pairs(seed + 1000))
    if augment_per_image:
        streams.append(_augment_params(seed + 3000, height, width, augment_config))

    def per_image(element, *drawn):
        drawn = list(drawn)
        if crop == "random":
            element = crop_one(element, drawn.pop(0))
        if augment_per_image:
            element = augment_one(element, drawn.pop(0))
        return element

    def with_streams(dataset):
        return tf.data.Dataset.zip(dataset, *streams) if streams else dataset

    per_class = [samples[samples["label_index"] == k] for k in range(num_classes)] if (
        balanced_sampling and training
    ) else None
    if per_class is not None:
        per_class = [frame for frame in per_class if len(frame)]
        branches = []
        for index, frame in enumerate(per_class):
            branch = _records(frame, with_ids).shuffle(len(frame), seed=seed + index, reshuffle_each_iteration=True)
            branch = _load_stage(branch, load, num_parallel_calls)
            branch = _cache(branch, cache, suffix=f"_class{index}")
            branches.append(branch.repeat().shuffle(min(shuffle_buffer, 256), seed=seed + index))
        # rerandomize_each_iteration: without it, once a global seed is set (keras.utils.set_random_seed,
        # as every training run does) each pass over the dataset draws the same class sequence.
        dataset = tf.data.Dataset.sample_from_datasets(
            branches, weights=[1.0 / len(branches)] * len(branches), seed=seed, stop_on_empty_dataset=False,
            rerandomize_each_iteration=True,
        ).take(len(samples))
    elif cache is None:
        # Nothing in between: read, decode, crop and augment each image in ONE map call (one
        # function call per image instead of two or three). The random streams are zipped before
        # the read, so every image gets the same draws as with separate stages.
        dataset = _records(samples, with_ids)
        if training:
            dataset = dataset.shuffle(max(len(samples), 1), seed=seed, reshuffle_each_iteration=True)
        dataset = _load_stage(
            with_streams(dataset), lambda record, *drawn: per_image(load(record), *drawn), num_parallel_calls
        )
    else:
        dataset = _load_stage(_records(samples, with_ids), load, num_parallel_calls)
        dataset = _cache(dataset, cache)
        if training:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    if (per_class is not None or cache is not None) and streams:
        dataset = with_streams(dataset).map(per_image, num_parallel_calls=num_parallel_calls)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = tf.data.Dataset.zip(dataset, _seed_pairs(seed + 2000))
    dataset = dataset.map(finish_batch, num_parallel_calls=num_parallel_calls)
    # tf.data's autotuner off: AUTOTUNE parallelism is then the number of cores. With it on, about
    # one run in three of `skinkeras bench pipeline` (2 cores) settled at ~1,620 images/s and
    # 120-145 % CPU instead of ~2,300 and 180 %; with it off, 11 runs out of 11 gave 1,880-2,440.
    options = tf.data.Options()
    options.autotune.enabled = _TF_DATA_AUTOTUNE
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def make_segmentation_dataset(
    table: SampleTable,
    *,
    image_size,
    batch_size: int,
    training: bool,
    augment: bool = True,
    color_constancy: bool = False,
    cache=None,
    shuffle_buffer: int = 1024,
    seed: int = 0,
    num_parallel_calls: int = AUTOTUNE,
    drop_remainder: bool | None = None,
    augment_config: AugmentConfig = AugmentConfig(),
    check_images: bool = True,
):
    """A batched `{"image", "mask"}` dataset; image and mask are resized and augmented jointly.

    Rows without `mask_path` are left out (and logged). The mask is read as one channel and
    binarised at half its range; it is resized and warped with nearest-neighbour interpolation
    and the same transform as its image, so it stays aligned and binary.
    """
    import tensorflow as tf

    height, width = _pair(image_size, "image_size")
    if drop_remainder is None:
        drop_remainder = training
    samples = _usable_samples(table, check_images)
    without_mask = samples["mask_path"].astype(str) == ""
    if without_mask.any():
        logger.warning(
            "skipped %d images without a mask: %s", int(without_mask.sum()), _ids(samples[without_mask])
        )
        samples = samples[~without_mask].reset_index(drop=True)

    def load(record):
        image = read_image(record["image_path"])
        if color_constancy:
            from skinkeras.preprocessing.color import shades_of_gray

            image = shades_of_gray(image)
        mask = read_mask(record["mask_path"])
        return {
            "image": resize(image, (height, width)),
            "mask": resize(mask, (height, width), method="nearest"),
        }

    def finish_batch(batch, batch_seed):
        image, mask = batch["image"], batch["mask"]
        if training and augment:
            image, mask = augment_batch(image, batch_seed, masks=mask, config=augment_config)
        return {"image": image, "mask": mask}

    dataset = _records(samples)
    if training and cache is None:
        dataset = dataset.shuffle(max(len(samples), 1), seed=seed, reshuffle_each_iteration=True)
    dataset = _load_stage(dataset, load, num_parallel_calls)
    dataset = _cache(dataset, cache)
    if training and cache is not None:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = tf.data.Dataset.zip(dataset, _seed_pairs(seed + 2000))
    dataset = dataset.map(finish_batch, num_parallel_calls=num_parallel_calls)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_multicrop_dataset(
    table: SampleTable,
    *,
    crop_size,
    image_size=None,
    grid=(6, 6),
    metadata: MetadataEncoding | None = None,
    color_constancy: bool = False,
    label_mode: str = "one_hot",
    num_parallel_calls: int = AUTOTUNE,
    check_images: bool = True,
    with_ids: bool = False,
):
    """Evaluation dataset: one element per image, its multi-crop grid as a batch (paper 000).

    Each element is `({"image": float32[rows * cols, h, w, 3], "metadata": [rows * cols, F]},
    label)`: predict on it and average over axis 0. `image_size` (`(height, width)`) resizes each
    image first (paper 000: 450 x 600); None keeps its size. `with_ids`: `(features, label,
    image_id)` elements.
    """
    import tensorflow as tf

    from skinkeras.preprocessing.multicrop import multi_crop

    _check_choice("label_mode", label_mode, LABEL_MODES)
    rows, cols = _pair(grid, "grid")
    samples = _usable_samples(table, check_images)
    num_classes = table.num_classes

    def load(record):
        image = read_image(record["image_path"])
        if color_constancy:
            from skinkeras.preprocessing.color import shades_of_gray

            image = shades_of_gray(image)
        if image_size is not None:
            image = resize(image, _pair(image_size, "image_size"))
        crops = multi_crop(image, crop_size, (rows, cols))
        features = {"image": crops}
        if metadata is not None:
            encoded = metadata.encode(record["age"][None], record["sex"][None], record["site"][None])
            features["metadata"] = tf.repeat(encoded, rows * cols, axis=0)
        label = tf.cast(record["label_index"], tf.int32)
        if label_mode == "one_hot":
            label = tf.one_hot(label, num_classes, dtype=tf.float32)
        if with_ids:
            return features, label, record["image_id"]
        return features, label

    dataset = _load_stage(_records(samples, with_ids), load, num_parallel_calls)
    return dataset.prefetch(tf.data.AUTOTUNE)


# ---- reading ------------------------------------------------------------------------------------
def read_image(path, dtype="float32"):
    """Reads any PNG / JPEG / BMP / GIF as `[H, W, 3]` in 0..255 (16-bit reduced to 8).

    `dtype`: "float32" (default) or "uint8" (the decoded pixels as they are).
    """
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False, dtype=tf.uint8)
    return image if dtype == "uint8" else tf.cast(image, tf.float32)


def read_mask(path):
    """Reads a lesion mask as float32 `[H, W, 1]` in {0, 1} (foreground: above half range)."""
    import tensorflow as tf

    mask = tf.io.decode_image(tf.io.read_file(path), channels=1, expand_animations=False, dtype=tf.uint8)
    return tf.cast(mask > 127, tf.float32)


def read_mask_or_empty(path, image_shape):
    """`read_mask(path)` or, for an empty path, an all-zero mask of `image_shape` (`[H, W]`)."""
    import tensorflow as tf

    return tf.cond(
        tf.equal(path, ""),
        lambda: tf.zeros(tf.concat([image_shape, [1]], axis=0), tf.float32),
        lambda: read_mask(path),
    )


# ---- unreadable images -----------------------------------------------------------------------
def find_unreadable(samples) -> list[str]:
    """Image ids of the rows of a samples frame whose image file cannot be decoded.

    Uses `skinkeras.data.images.check_images` (OpenCV, thread pool; also catches truncated JPEGs
    that some decoders only warn about) when it is available, else decodes with TensorFlow.
    """
    paths = samples["image_path"].astype(str).tolist()
    ids = samples["image_id"].astype(str).tolist()
    try:
        from skinkeras.data.images import check_images as _check_images
    except ImportError:  # loaders module not there: fall back to TensorFlow's own decoder
        _check_images = None
    if _check_images is not None:
        from skinkeras.data.table import UNREADABLE

        problems = _check_images(paths, image_ids=ids)
        return [p.image_id for p in problems if p.kind == UNREADABLE]
    return _find_unreadable_tf(paths, ids)


def _find_unreadable_tf(paths, ids) -> list[str]:
    import tensorflow as tf

    def decode(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return index, tf.shape(image)[0]

    dataset = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), tf.constant(paths, tf.string)))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    readable = {int(index) for index, _ in dataset.as_numpy_iterator()}
    return [ids[i] for i in range(len(paths)) if i not in readable]


def _usable_samples(table: SampleTable, check_images: bool):
    samples = table.samples.reset_index(drop=True)
    if len(samples) == 0:
        from skinkeras.errors import DataError

        raise DataError(f"dataset {table.name!r} at {table.root} has no usable samples")
    if check_images:
        bad = find_unreadable(samples)
        if bad:
            logger.warning("skipped %d unreadable images: %s", len(bad), ", ".join(bad))
            samples = samples[~samples["image_id"].astype(str).isin(set(bad))].reset_index(drop=True)
    return samples


# ---- helpers ------------------------------------------------------------------------------------
def _records(samples, with_ids: bool = False):
    import numpy as np
    import tensorflow as tf

    records = {
        "image_path": samples["image_path"].astype(str).to_numpy(dtype=object),
        "mask_path": samples["mask_path"].fillna("").astype(str).to_numpy(dtype=object),
        "label_index": samples["label_index"].to_numpy(dtype=np.int32),
        "age": samples["age"].astype(float).to_numpy(dtype=np.float32),
        "sex": samples["sex"].fillna("unknown").astype(str).to_numpy(dtype=object),
        "site": samples["site"].fillna("unknown").astype(str).to_numpy(dtype=object),
    }
    if with_ids:
        records["image_id"] = samples["image_id"].astype(str).to_numpy(dtype=object)
    return tf.data.Dataset.from_tensor_slices(records)


def _load_stage(dataset, load, num_parallel_calls):
    # Safety net: a file that breaks after the pre-check is skipped with a logged warning instead
    # of ending the epoch.
    return dataset.map(load, num_parallel_calls=num_parallel_calls).ignore_errors(log_warning=True)


def _cache(dataset, cache, suffix=""):
    if cache is None:
        return dataset
    if cache == "memory":
        return dataset.cache()
    return dataset.cache(str(cache) + suffix)


def _seed_pairs(seed):
    import tensorflow as tf

    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def _augment_params(seed, height, width, config, chunk=64):
    """An endless stream of per-image augmentation parameters, generated `chunk` at a time."""
    from skinkeras.preprocessing.augment import random_augment_params

    return (
        _seed_pairs(seed)
        .map(lambda pair: random_augment_params(chunk, height, width, pair, config))
        .unbatch()
    )


def _ids(frame, limit=20):
    ids = frame["image_id"].astype(str).tolist()
    return ", ".join(ids[:limit]) + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}. Received: {name}={value!r}")
