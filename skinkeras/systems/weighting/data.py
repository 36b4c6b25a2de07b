"""The splits of a paper-003 run and the tf.data streams of its cells.

Splits (paper 003, section 4.4: "two random splits of the training set into two sets of 80 % for
training and 20 % for evaluation", repeated lesions in one set only): for each seed of
`weighting.split_seeds`, a lesion-grouped, class-stratified split of the whole dataset into 80 %
(pool) and 20 % (test), then of the pool into train and `val_fraction` validation, both with
`skinkeras.data.splits.train_val_test_split`. They are written once to splits.csv and read back on
`--resume`.

Streams: `make_classification_dataset` (files, never the pixels in memory) with integer labels,
mapped to what the row's model trains on:
- flat: `(features, one-hot[C])`; CB / ES weights live in the loss (`classification_loss`);
- hierarchical: `(features, targets, sample_weight)`: targets are `Taxonomy.targets` of the label,
  the heads concatenated in head order (a head off the sample's path has weight 0 there, so its
  target is all zero and adds nothing to the loss); with CB / ES the sample weight is the class
  weight of the sample's (final) class, which multiplies every head weight of the sample.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


def split_column(k: int) -> str:
    return f"split_{int(k)}"


def make_splits(samples: pd.DataFrame, seeds, *, test_fraction: float, val_fraction: float) -> pd.DataFrame:
    """image_id, lesion_id, label and one `split_<k>` column (train / val / test) per seed."""
    from skinkeras.data.splits import train_val_test_split

    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise SkinkerasError(f"weighting.test_fraction must be in (0, 1) and val_fraction in [0, 1). "
                             f"Received: {test_fraction}, {val_fraction}")
    frame = samples.reset_index(drop=True)
    out = pd.DataFrame({"image_id": frame["image_id"].astype(str), "lesion_id": frame["lesion_id"].astype(str),
                        "label": frame["label"].astype(str)})
    for k, seed in enumerate(seeds):
        column = np.full(len(frame), "", dtype=object)
        outer = train_val_test_split(frame, (1 - test_fraction, 0.0, test_fraction), seed=int(seed))
        column[outer.test] = "test"
        pool = frame.iloc[outer.train].reset_index(drop=True)
        inner = train_val_test_split(pool, (1 - val_fraction, val_fraction, 0.0), seed=int(seed) + 10_007)
        column[outer.train[inner.train]] = "train"
        column[outer.train[inner.val]] = "val"
        out[split_column(k)] = column
    return out


def read_or_make_splits(config, run, table) -> pd.DataFrame:
    """The run's splits.csv (checked against the dataset), else new splits written there."""
    w = config.weighting
    if run.splits.is_file():
        stored = pd.read_csv(run.splits, dtype=str, keep_default_na=False)
        missing = set(table.samples["image_id"].astype(str)) - set(stored["image_id"])
        if missing:
            raise SkinkerasError(f"{len(missing)} images of the dataset are not in {run.splits} "
                                 f"(e.g. {sorted(missing)[0]}): is this the run's dataset?")
        return stored
    splits = make_splits(table.samples, w.split_seeds, test_fraction=w.test_fraction, val_fraction=w.val_fraction)
    run.path.mkdir(parents=True, exist_ok=True)
    splits.to_csv(run.splits, index=False)
    for k in range(len(w.split_seeds)):
        log.info("split %d: %s", k, splits[split_column(k)].value_counts().to_dict())
    return splits


def part_table(table, splits: pd.DataFrame, k: int, part: str):
    """The images of `part` ("train" / "val" / "test") of split k, as a SampleTable."""
    by_id = dict(zip(splits["image_id"], splits[split_column(k)]))
    return table.subset(table.samples["image_id"].astype(str).map(by_id).fillna("").to_numpy() == part)


def hierarchy_targets(taxonomy, num_classes: int) -> np.ndarray:
    """(C, sum of the heads' children): each class's concatenated per-head targets (zero off its path)."""
    targets, _ = taxonomy.targets(np.arange(num_classes))
    return np.concatenate([targets[name] for name in taxonomy.head_names], axis=1).astype(np.float32)


def stream(config, table, *, training: bool, epoch: int = 0, with_ids: bool = False):
    """The raw stream of `table`: `(features, label index[, image_id])` batches."""
    from skinkeras.data.pipeline import make_classification_dataset

    return make_classification_dataset(
        table, image_size=config.data.image_size, batch_size=config.data.batch_size, training=training,
        augment=config.data.augment, color_constancy=config.data.color_constancy, cache=config.data.cache or None,
        seed=config.train.seed * 100_003 + epoch * 7_919, label_mode="index", check_images=False,
        with_ids=with_ids)


def training_stream(config, table, *, epoch: int, num_classes: int, hierarchy: np.ndarray | None = None,
                    sample_weights: np.ndarray | None = None):
    """The row's training elements (module docstring): flat without `hierarchy`, else hierarchical."""
    import tensorflow as tf

    dataset = stream(config, table, training=True, epoch=epoch)
    if hierarchy is None:
        return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes, dtype=tf.float32)))
    lookup = tf.constant(hierarchy)
    if sample_weights is None:
        return dataset.map(lambda x, y: (x, tf.gather(lookup, y)))
    weights = tf.constant(np.asarray(sample_weights, np.float32))
    return dataset.map(lambda x, y: (x, tf.gather(lookup, y), tf.gather(weights, y)))


def predict(model, config, table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, label indices, probabilities) of `table` by `model` (one output: probabilities)."""
    ids, labels, probabilities = [], [], []
    for features, label, image_id in stream(config, table, training=False, with_ids=True):
        probabilities.append(np.asarray(model(features, training=False), np.float64))
        labels.append(label.numpy())
        ids.append(image_id.numpy().astype(str))
    if not probabilities:
        return np.array([], str), np.array([], np.int64), np.zeros((0, table.num_classes))
    return np.concatenate(ids), np.concatenate(labels).astype(np.int64), np.concatenate(probabilities)
