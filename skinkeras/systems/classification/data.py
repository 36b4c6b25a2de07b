"""A classification run's data: the split table, the metadata encoding (fitted on the training
part) written to preprocessing.json, and the tf.data pipeline of each part.

Elements: `({"image": float32[H, W, 3] in 0..255, "metadata": float32[F]}, one-hot float32[C])`,
`metadata` only for metadata models.
"""

from __future__ import annotations

import logging

from skinkeras.engine.run_data import RunData, limit_training, load_split_table
from skinkeras.engine.run_directory import RunDirectory
from skinkeras.errors import SkinkerasError
from skinkeras.files import write_json

log = logging.getLogger(__name__)


def prepare_data(config, run: RunDirectory, *, table=None) -> RunData:
    """Loads the dataset (or takes `table`), splits it by lesion (or reuses the run's split.csv)
    and fits the metadata encoding on the training part. Writes split.csv, preprocessing.json and
    skipped.json."""
    from skinkeras.data.metadata import MetadataEncoding

    table = load_split_table(config, run, table=table)
    table = limit_training(table, config.data.limit, config.train.seed, stratified=True)
    metadata = None
    if config.data.use_metadata and config.model.metadata_branch != "none":
        metadata = MetadataEncoding.fit(table.samples[table.samples["split"] == "train"])
        _report_unknown_sites(table.samples, metadata)
    write_json(run.preprocessing, {
        "dataset": config.data.dataset,
        "class_names": list(table.class_names),
        "image_size": config.data.image_size,
        "metadata": metadata.to_config() if metadata else None,
        "metadata_features": list(metadata.feature_names) if metadata else None,
        "input": "raw RGB 0..255, scaled inside the model",
    })
    return RunData(table=table, class_names=tuple(table.class_names), metadata=metadata)


def _report_unknown_sites(samples, metadata) -> None:
    """Names the images whose site the encoding's vocabulary lacks (the model sees "unknown")."""
    odd = samples[~samples["site"].isin(metadata.sites)]
    if len(odd):
        log.warning("%d images have a site outside the model's vocabulary, encoded as unknown: %s", len(odd),
                    "; ".join(f"{i} ({s!r})" for i, s in zip(odd["image_id"], odd["site"])))


def make_dataset(config, data: RunData, part: str, *, training: bool, epoch: int = 0):
    """The tf.data pipeline of one part ("train", "val", "test") of the run's data."""
    from skinkeras.data.pipeline import make_classification_dataset

    table = data.part(part)
    if len(table) == 0:
        raise SkinkerasError(f"the {part} split is empty: {len(data.table)} images in all")
    return make_classification_dataset(
        table,
        image_size=config.data.image_size,
        batch_size=config.data.batch_size,
        training=training,
        metadata=data.metadata,
        augment=config.data.augment,
        color_constancy=config.data.color_constancy,
        balanced_sampling=config.data.balanced_sampling,
        cache=config.data.cache or None,
        # One seed per epoch: the epoch's order and augmentation depend on (seed, epoch) only.
        seed=config.train.seed * 100_003 + epoch * 7_919,
        metadata_missing_rate=config.data.metadata_missing_p,
        check_images=False,  # done once, up front, by `check_images_once`
    )
