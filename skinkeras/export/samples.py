"""The images an export is verified, calibrated and benchmarked on: a run's own split of its data.

`iterate_samples` prepares each image as the evaluation pipeline does (TF's decoder, then
`serving.preprocess_images`), so the figures match `skinkeras evaluate`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)


def default_data_root(run_dir) -> str:
    """The run's own data root (config.json data.root); an error naming --data-root when absent."""
    from skinkeras.engine.run_directory import as_run

    run = as_run(run_dir)
    root = run.read_json(run.config.name, default={"data": {}}).get("data", {}).get("root", "")
    if not root or not Path(root).is_dir():
        raise SkinkerasError(f"the run's data root {root!r} is not a folder here; pass --data-root DIR")
    return root


def held_out_table(run_dir, data_root, split: str = "test", *, limit: int | None = None, seed: int = 0):
    """The run's `split` images found under `data_root`; a seeded random `limit` of them."""
    from skinkeras.engine.run_data import evaluation_table

    table = evaluation_table(Path(run_dir), data_root or default_data_root(run_dir), None, split)
    if limit and len(table) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(len(table), size=limit, replace=False))
        table = table.subset(table.samples.index[chosen])
    return table


def iterate_samples(table, spec, *, raw: bool = False):
    """Yields `(label_index, image, metadata_vector[, raw_uint8, (age, sex, site)])` per readable row:
    `image` float32 `[S, S, 3]` prepared as the evaluation pipeline does, metadata `[F]` or None.
    Unreadable files are skipped with a warning, as the evaluation pipeline skips them."""
    import tensorflow as tf

    from skinkeras.data.pipeline import read_image
    from skinkeras.export.serving import preprocess_images

    for row in table.samples.itertuples(index=False):
        try:
            # The evaluation pipeline's decoder (TF's), so the figures match `skinkeras evaluate`.
            pixels = read_image(row.image_path, dtype="uint8").numpy()
        except (tf.errors.OpError, ValueError) as error:
            log.warning("skipped unreadable %s: %s", row.image_path, str(error).splitlines()[0])
            continue
        image = preprocess_images(pixels, spec.image_size, color_constancy=spec.color_constancy).numpy()
        values = (float(row.age), str(row.sex), str(row.site))
        metadata = spec.metadata.encode_numpy(*[[v] for v in values])[0] if spec.metadata is not None else None
        if raw:
            yield int(row.label_index), image, metadata, pixels, values
        else:
            yield int(row.label_index), image, metadata
