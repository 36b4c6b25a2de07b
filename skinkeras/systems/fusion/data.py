"""The cases of a fusion run in memory, and the tf.data streams the towers train on.

Every image is decoded once (`load_cases`): the largest centred square (the paper crops no lesion by
hand: "we chose to automatically crop the largest centred square"), resized with OpenCV's area
interpolation to `fusion.image_size` and kept as uint8, dermoscopic and clinical side by side; a
case whose clinical image is absent or unreadable keeps `has_clinical` False and a zero image (it
is predicted by its row's fallback model), a case whose dermoscopic image cannot be read is left
out and named. A tf.data pipeline then batches those arrays with per-image augmentation (flips,
right-angle rotations, brightness and contrast), each view augmented on its own.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from skinkeras.data.table import MISSING_CLINICAL, UNREADABLE, Problem

log = logging.getLogger(__name__)

INPUTS = {"dsc": "dermoscopic", "macro": "clinical"}  # model input name per modality


def square_resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of uint8 RGB `pixels`, resized to size x size (area interpolation
    when shrinking, bilinear when enlarging)."""
    import cv2

    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = pixels[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


@dataclasses.dataclass
class Cases:
    """Decoded cases: `dsc` / `macro` uint8[N, S, S, 3], `has_clinical` bool[N], `labels` int[N],
    `frame` the samples rows (metadata columns, split), `ids` str[N]."""

    ids: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    dsc: np.ndarray
    macro: np.ndarray
    has_clinical: np.ndarray
    frame: object

    def __len__(self) -> int:
        return len(self.ids)

    def images(self, modality: str) -> np.ndarray:
        return self.dsc if modality == "dsc" else self.macro


def load_cases(table, image_size: int) -> tuple[Cases, list[Problem]]:
    """Decodes every case of `table` (see the module docstring). Returns the cases and the problems
    met while decoding (an unreadable dermoscopic image excludes its case; a clinical one does not)."""
    from skinkeras.data.images import read_image_rgb
    from skinkeras.errors import DataError

    samples = table.samples.reset_index(drop=True)
    clinical_paths = samples["clinical_path"].astype(str) if "clinical_path" in samples else [""] * len(samples)
    keep, dsc, macro, has_clinical, problems = [], [], [], [], []
    blank = np.zeros((image_size, image_size, 3), np.uint8)
    for position, (image_id, path, clinical) in enumerate(zip(samples["image_id"], samples["image_path"], clinical_paths)):
        try:
            dsc_pixels = square_resize(read_image_rgb(path), image_size)
        except (DataError, OSError, ValueError) as error:
            problems.append(Problem(str(image_id), UNREADABLE, f"dermoscopic image unreadable, case left out: {error}"))
            continue
        clinical_pixels = None
        if clinical:
            try:
                clinical_pixels = square_resize(read_image_rgb(clinical), image_size)
            except (DataError, OSError, ValueError) as error:
                problems.append(Problem(str(image_id), MISSING_CLINICAL,
                                        f"clinical image unreadable, predicted from dermoscopy: {error}"))
        keep.append(position)
        dsc.append(dsc_pixels)
        macro.append(blank if clinical_pixels is None else clinical_pixels)
        has_clinical.append(clinical_pixels is not None)
    kept = samples.iloc[keep].reset_index(drop=True)
    cases = Cases(
        ids=kept["image_id"].astype(str).to_numpy(), labels=kept["label_index"].to_numpy(np.int64),
        class_names=tuple(table.class_names),
        dsc=np.stack(dsc) if dsc else np.zeros((0, image_size, image_size, 3), np.uint8),
        macro=np.stack(macro) if macro else np.zeros((0, image_size, image_size, 3), np.uint8),
        has_clinical=np.asarray(has_clinical, bool), frame=kept)
    return cases, problems


def row_inputs(row, cases: Cases, metadata: np.ndarray, rows) -> dict:
    """The model inputs of `row` for the cases at positions `rows`: {"dermoscopic", "clinical",
    "metadata"} as the row needs them (images float32 0..255)."""
    rows = np.asarray(rows, np.int64)
    feed = {INPUTS[m]: cases.images(m)[rows].astype(np.float32) for m in row.images}
    if row.metadata:
        feed["metadata"] = metadata[rows].astype(np.float32)
    return feed


def augment(images, seed):
    """Per-image random flips, transposition (with the flips: all eight right-angle symmetries),
    brightness x U(0.85, 1.15) and contrast x U(0.85, 1.15) of float32 [B, S, S, 3] 0..255 squares;
    stateless (`seed`: int32[2]), so an epoch's augmentation is a function of the seed alone."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 5)
    batch = tf.shape(images)[0]

    def coin(k):
        return (tf.random.stateless_uniform([batch], seeds[k]) < 0.5)[:, None, None, None]

    x = tf.where(coin(0), tf.reverse(images, axis=[2]), images)
    x = tf.where(coin(1), tf.reverse(x, axis=[1]), x)
    x = tf.where(coin(2), tf.transpose(x, [0, 2, 1, 3]), x)
    bright = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[3], 0.85, 1.15)
    contrast = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[4], 0.85, 1.15)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(((x - mean) * contrast + mean) * bright, 0.0, 255.0)


def training_dataset(row, cases: Cases, metadata: np.ndarray, rows, *, batch_size: int, seed: int,
                     augment_images: bool = True):
    """One epoch of (inputs, one-hot) batches of `rows`, in an order and with augmentation fixed by `seed`."""
    import tensorflow as tf

    rows = np.asarray(rows, np.int64)
    order = rows[np.random.default_rng(seed).permutation(len(rows))]
    feed = {INPUTS[m]: cases.images(m)[order] for m in row.images}
    if row.metadata:
        feed["metadata"] = metadata[order].astype(np.float32)
    targets = np.eye(len(cases.class_names), dtype=np.float32)[cases.labels[order]]
    data = tf.data.Dataset.from_tensor_slices((feed, targets)).batch(batch_size).enumerate()
    image_names = [INPUTS[m] for m in row.images]

    def prepare(index, element):
        inputs, y = element
        inputs = dict(inputs)
        for k, name in enumerate(image_names):
            x = tf.cast(inputs[name], tf.float32)
            if augment_images:
                x = augment(x, tf.stack([tf.cast(seed % (2**31 - 1), tf.int32), tf.cast(index * 2 + k, tf.int32)]))
            inputs[name] = x
        return inputs, y

    return data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def predict(model, row, cases: Cases, metadata: np.ndarray, rows, *, batch_size: int = 64) -> np.ndarray:
    """float64[n, C] probabilities of `model` for the cases at `rows` (no augmentation)."""
    rows = np.asarray(rows, np.int64)
    out = []
    for start in range(0, len(rows), batch_size):
        feed = row_inputs(row, cases, metadata, rows[start:start + batch_size])
        out.append(np.asarray(model.predict_on_batch(feed), np.float64))
    return np.concatenate(out) if out else np.zeros((0, len(cases.class_names)))
