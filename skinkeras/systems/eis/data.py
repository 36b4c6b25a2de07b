"""Paper 000's data in memory, and the tf.data streams its models train on.

A lesion is one dermoscopy image (optional) and 1..N EIS measurements of 700 features each
(`skinkeras.data.eis.spectra_to_features`). The paper's sets are small (988 lesions, 3,131
measurements), so everything is decoded once into arrays (`LesionArrays`), and each fold's
streams index into them:

- EIS streams give `{"eis": float32[T, 700], "eis_mask": float32[T]}` with the lesion's real
  measurements in a NEW random order at every training step (the paper: "we randomly permute the
  sequences during training"), zero padding after them, and the mask saying which rows are real.
  A lesion with more than T measurements keeps a random T of them in training (the first T in
  evaluation; the log says how many lesions that concerns).
- Image streams give `{"image": float32[S, S, 3]}`: a random S x S crop of the resized image,
  random horizontal / vertical flips, random brightness and contrast, raw 0..255 (models scale).
- Targets are one-hot float32[2] (benign, malignant).

Evaluation is deterministic per seed: images are scored on `eis.eval_crops` crops on an evenly
spaced square grid covering the image (`crop_offsets`) and averaged; EIS sequences on
`eis.eval_permutations` random orders, averaged; a joint model gets one random order per crop.

Standardisation (zero mean, unit variance per feature) is fitted on the training folds' measurements
only (`feature_stats`) and lives in each model (a Normalization layer), so models take raw features.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

CLASS_NAMES = ("benign", "malignant")


@dataclasses.dataclass
class LesionArrays:
    """Every lesion of a dataset, decoded: ids, labels, EIS features and (optionally) images."""

    ids: np.ndarray  # str (N,): lesion ids
    labels: np.ndarray  # int (N,): 0 benign, 1 malignant
    diagnosis: np.ndarray  # str (N,)
    features: np.ndarray  # float32 (N, Tmax, 700), zero rows after each lesion's count
    counts: np.ndarray  # int (N,): measurements per lesion
    images: np.ndarray | None  # uint8 (N, H, W, 3), or None when no lesion has an image
    has_image: np.ndarray  # bool (N,)

    def __len__(self):
        return len(self.ids)


def _labels_of(table) -> np.ndarray:
    names = list(table.class_names)
    labels = table.samples["label"].astype(str).map({name: k for k, name in enumerate(CLASS_NAMES)})
    if labels.isna().any():
        bad = sorted(set(table.samples["label"][labels.isna()]))
        raise SkinkerasError(f"EIS labels must be benign or malignant (classes {names}). Received: {bad}")
    return labels.to_numpy().astype(np.int64)


def diagnoses(samples) -> np.ndarray:
    """Each lesion's diagnosis (`skinkeras.data.eis.load_eis` fills one in for every lesion:
    a layout without the column reads melanoma / benign_unspecified / malignant_unspecified)."""
    return samples["diagnosis"].astype(str).to_numpy()


def load_arrays(table, *, image_height: int, image_width: int, need_images: bool) -> LesionArrays:
    """Decodes the spectra (and, with `need_images`, the images resized to height x width) of `table`."""
    from skinkeras.data.eis import load_spectra, spectra_to_features

    samples = table.samples.reset_index(drop=True)
    features = [spectra_to_features(load_spectra(path)) for path in samples["eis_path"]]
    counts = np.array([len(f) for f in features], dtype=np.int64)
    padded = np.zeros((len(features), max(int(counts.max()), 1), features[0].shape[1]), np.float32)
    for row, values in enumerate(features):
        padded[row, : len(values)] = values
    has_image = samples["image_path"].astype(str).str.len().to_numpy() > 0
    images = None
    if need_images and has_image.any():
        images = _load_images(samples["image_path"], has_image, image_height, image_width)
    return LesionArrays(ids=samples["image_id"].astype(str).to_numpy(), labels=_labels_of(table),
                        diagnosis=diagnoses(samples), features=padded, counts=counts, images=images, has_image=has_image)


def resize_image(image, height: int, width: int) -> np.ndarray:
    """uint8 RGB resized to height x width (OpenCV INTER_AREA), as every lesion image is before
    cropping, in training and in prediction; unchanged when either is 0."""
    import cv2

    if height and width:
        return cv2.resize(image, (int(width), int(height)), interpolation=cv2.INTER_AREA)
    return image


def _load_images(paths, has_image, height: int, width: int) -> np.ndarray:
    from skinkeras.data.images import read_image_rgb

    first = None
    images = None
    for row, (path, present) in enumerate(zip(paths, has_image)):
        if not present:
            continue
        image = resize_image(read_image_rgb(path), height, width)
        if images is None:
            first = image.shape
            images = np.zeros((len(paths), *first), np.uint8)
        elif image.shape != first:
            raise SkinkerasError(f"image {path} is {image.shape[1]}x{image.shape[0]}, the others "
                                 f"{first[1]}x{first[0]}: set eis.image_height and eis.image_width to resize them")
        images[row] = image
    return images


def one_lesion(image=None, features=None) -> LesionArrays:
    """A one-lesion `LesionArrays` (a new case to predict): uint8 image already resized (or None),
    float32 (n, 700) features (or None: one zero measurement, for image-only rows)."""
    if features is None:
        features = np.zeros((1, 700), np.float32)
    images = None if image is None else np.asarray(image, np.uint8)[None]
    return LesionArrays(ids=np.array(["lesion"]), labels=np.zeros(1, np.int64), diagnosis=np.array([""]),
                        features=np.asarray(features, np.float32)[None], counts=np.array([len(features)]),
                        images=images, has_image=np.array([images is not None]))


def feature_stats(arrays: LesionArrays, rows) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every feature over the real measurements of the lesions `rows`."""
    rows = np.asarray(rows)
    real = np.concatenate([arrays.features[r, : arrays.counts[r]] for r in rows]).astype(np.float64)
    return real.mean(axis=0).astype(np.float32), real.var(axis=0).astype(np.float32)


def measurement_rows(arrays: LesionArrays, rows) -> tuple[np.ndarray, np.ndarray]:
    """The real measurements of the lesions `rows` as (features (M, 700), labels (M,))."""
    rows = np.asarray(rows)
    x = np.concatenate([arrays.features[r, : arrays.counts[r]] for r in rows])
    y = np.concatenate([np.full(arrays.counts[r], arrays.labels[r]) for r in rows])
    return x, y


def report_truncation(arrays: LesionArrays, max_measurements: int) -> None:
    over = int((arrays.counts > max_measurements).sum())
    if over:
        log.warning("%d lesions have more than eis.max_measurements=%d measurements: training uses a "
                    "random %d of them per step, evaluation the first %d", over, max_measurements,
                    max_measurements, max_measurements)


# --- tf.data streams (training) -------------------------------------------------------------

def _permuted_sequence(features, count, length: int, training: bool):
    """A lesion's real rows in a random order (first `count` rows of `features`), cut or
    zero-padded to `length`, and its mask."""
    import tensorflow as tf

    total = tf.shape(features)[0]
    positions = tf.range(total)
    if training:
        keys = tf.random.uniform([total])
        keys = tf.where(positions < count, keys, 2.0 + tf.cast(positions, tf.float32))
        features = tf.gather(features, tf.argsort(keys))
    features = features[:length]
    pad = length - tf.shape(features)[0]
    features = tf.pad(features, [[0, pad], [0, 0]])
    kept = tf.minimum(count, length)
    mask = tf.cast(tf.range(length) < kept, tf.float32)
    features = features * mask[:, None]
    features.set_shape([length, None])
    return features, mask


def _augment_image(image, crop_size: int):
    import tensorflow as tf

    image = tf.image.random_crop(image, [crop_size, crop_size, 3])
    image = tf.cast(image, tf.float32)
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_flip_up_down(image)
    image = tf.image.random_brightness(image, 0.1 * 255.0)
    image = tf.image.random_contrast(image, 0.8, 1.2)
    return tf.clip_by_value(image, 0.0, 255.0)


def training_dataset(arrays: LesionArrays, rows, *, batch_size: int, max_measurements: int,
                     use_images: bool, use_eis: bool, crop_size: int = 224, target_names=None, seed: int = 0):
    """Shuffled lesion batches of `({"image"?, "eis"?, "eis_mask"?}, targets)` for one epoch.

    `target_names`: output names that all get the one-hot target (a model with several outputs)."""
    import tensorflow as tf

    rows = np.asarray(rows)
    onehot = np.eye(2, dtype=np.float32)[arrays.labels[rows]]
    parts = {"target": onehot}
    if use_eis:
        parts["features"] = arrays.features[rows]
        parts["count"] = arrays.counts[rows].astype(np.int32)
    if use_images:
        parts["image"] = arrays.images[rows]

    def element(item):
        inputs = {}
        if use_eis:
            inputs["eis"], inputs["eis_mask"] = _permuted_sequence(
                item["features"], item["count"], max_measurements, training=True)
        if use_images:
            inputs["image"] = _augment_image(item["image"], crop_size)
        target = item["target"]
        if target_names:
            target = {name: target for name in target_names}
        return inputs, target

    dataset = tf.data.Dataset.from_tensor_slices(parts)
    dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return dataset.map(element, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)



def measurement_dataset(arrays: LesionArrays, rows, *, batch_size: int, seed: int = 0):
    """Shuffled single measurements `({"eis_measurement": [700]}, one-hot)` (the FC-NN's training)."""
    import tensorflow as tf

    x, y = measurement_rows(arrays, rows)
    dataset = tf.data.Dataset.from_tensor_slices(({"eis_measurement": x}, np.eye(2, dtype=np.float32)[y]))
    return dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size).prefetch(2)


# --- evaluation (deterministic, numpy) ------------------------------------------------------

def crop_offsets(height: int, width: int, crop_size: int, count: int) -> list[tuple[int, int]]:
    """`count` (a square: 1, 4, 9, ..., 36) crop corners on an evenly spaced grid that covers the image."""
    side = math.isqrt(count)
    if side * side != count or count < 1:
        raise SkinkerasError(f"eis.eval_crops must be a square number (1, 4, 9, ..., 36). Received: {count}")
    if crop_size > min(height, width):
        raise SkinkerasError(f"eis.crop_size={crop_size} is larger than the images ({width}x{height})")
    if side == 1:
        return [((height - crop_size) // 2, (width - crop_size) // 2)]
    ys = np.linspace(0, height - crop_size, side).round().astype(int)
    xs = np.linspace(0, width - crop_size, side).round().astype(int)
    return [(int(y), int(x)) for y in ys for x in xs]


def evaluation_sequences(arrays: LesionArrays, rows, copies: int, max_measurements: int, rng, shuffle: bool = True):
    """`copies` random orders of each lesion's real measurements (the given order, the first T, when
    not `shuffle`): (len(rows) * copies, T, 700) and masks."""
    rows = np.asarray(rows)
    length = max_measurements
    out = np.zeros((len(rows) * copies, length, arrays.features.shape[2]), np.float32)
    mask = np.zeros((len(rows) * copies, length), np.float32)
    for i, r in enumerate(rows):
        count = int(arrays.counts[r])
        for c in range(copies):
            order = (rng.permutation(count) if shuffle else np.arange(count))[:length]
            out[i * copies + c, : len(order)] = arrays.features[r, order]
            mask[i * copies + c, : len(order)] = 1.0
    return out, mask


def input_names(model) -> list[str]:
    """The names of a Keras model's inputs (dict inputs: their keys)."""
    if isinstance(model.input, dict):
        return list(model.input)
    return [t.name.split(":")[0] for t in model.inputs]


def predict_lesions(model, arrays: LesionArrays, rows, *, use_images: bool, use_eis: bool, crop_size: int,
                    eval_crops: int, eval_permutations: int, max_measurements: int, seed: int = 0,
                    shuffle: bool = True, chunk: int = 512) -> np.ndarray:
    """(len(rows), 2) probabilities: the mean over the evaluation crops (images; each crop with its
    own measurement order for a joint model) or over `eval_permutations` orders (EIS only).
    `shuffle=False`: the measurements in their given order (the first T) everywhere, deterministic
    (what an exported SavedModel computes)."""
    rows = np.asarray(rows)
    rng = np.random.default_rng(seed)
    if use_images:
        height, width = arrays.images.shape[1:3]
        offsets = crop_offsets(height, width, crop_size, eval_crops)
        copies = len(offsets)
    else:
        offsets, copies = None, (eval_permutations if use_eis and shuffle else 1)
    per_step = max(1, chunk // copies)
    names = input_names(model)
    results = []
    for start in range(0, len(rows), per_step):
        part = rows[start: start + per_step]
        inputs = {}
        if use_eis:
            inputs["eis"], inputs["eis_mask"] = evaluation_sequences(arrays, part, copies, max_measurements, rng, shuffle)
        if use_images:
            crops = np.stack([arrays.images[r, y: y + crop_size, x: x + crop_size]
                              for r in part for (y, x) in offsets]).astype(np.float32)
            inputs["image"] = crops
        feed = {k: v for k, v in inputs.items() if k in names}
        probabilities = np.asarray(model.predict_on_batch(feed), np.float64)
        results.append(probabilities.reshape(len(part), copies, -1).mean(axis=1))
    return np.concatenate(results) if results else np.zeros((0, 2))
