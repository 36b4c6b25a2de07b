"""Training a lesion segmenter (task "segmentation"; paper 002's U-Net) with the fit engine.

The split is lesion-grouped over the WHOLE dataset (with the same `split.fractions` and
`split.seed` a classification run on the same data gets the same split, and a two-stage run does
not segment its test images with a model trained on them); only images with a mask are then used
(how many lacked one is logged and written to run.json). best.keras is the model at the best
validation Jaccard; preprocessing.json records `task`, `image_size` and the threshold.

Without a cache each epoch streams a dataset whose order and augmentation depend on (seed, epoch)
only, so `--resume` replays exactly. With `data.cache` the training dataset is built once per
session (a cache would otherwise be rebuilt every epoch): a resumed run then continues with another
shuffle order than an uninterrupted one.
"""

from __future__ import annotations

import logging

from skinkeras.engine.run_data import (
    check_images_once,
    limit_training,
    load_split_table,
    require_parts,
)
from skinkeras.engine.run_directory import RunDirectory
from skinkeras.errors import SkinkerasError
from skinkeras.files import write_json

log = logging.getLogger(__name__)

MONITOR = "val_jaccard"  # best.keras is the model at the best validation Jaccard


def prepare_segmentation_data(config, run: RunDirectory):
    """The dataset with a `split` column (reusing the run's split.csv), images without a mask
    removed. Writes split.csv (first time), preprocessing.json and skipped.json. Returns
    (table, number of images without a mask)."""
    table = load_split_table(config, run)
    has_mask = table.samples["mask_path"].fillna("").astype(str) != ""
    without_mask = int((~has_mask).sum())
    if without_mask:
        log.warning("%d of %d images have no mask and are left out", without_mask, len(table))
    table = table.subset(has_mask)
    if not len(table):
        raise SkinkerasError(f"no image of {config.data.dataset} at {config.data.root} has a lesion mask")
    table = limit_training(table, config.data.limit, config.train.seed, stratified=False)
    write_json(run.preprocessing, {
        "task": "segmentation",
        "dataset": config.data.dataset,
        "image_size": config.data.image_size,
        "threshold": config.segmentation.threshold,
        "input": "raw RGB 0..255, scaled inside the model; output: lesion probability per pixel",
    })
    return table, without_mask


def make_dataset(config, table, *, training: bool, epoch: int = 0):
    """`(image, mask)` batches of `table` (elements: float32[S, S, 3] 0..255, float32[S, S, 1])."""
    from skinkeras.data.pipeline import make_segmentation_dataset

    dataset = make_segmentation_dataset(
        table,
        image_size=config.data.image_size,
        batch_size=config.data.batch_size,
        training=training,
        augment=config.data.augment,
        color_constancy=config.data.color_constancy,
        cache=config.data.cache or None,
        seed=config.train.seed * 100_003 + epoch * 7_919,
        check_images=False,  # done once, up front
    )
    return dataset.map(lambda element: (element["image"], element["mask"]))


def train_segmentation(config, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains `config`'s segmenter into `run_dir` (or continues it with `resume=True`)."""
    from skinkeras.engine.fit import build_or_resume, fit, start_run, write_summary
    from skinkeras.engine.runtime import make_strategy, resolve_precision
    from skinkeras.systems.segmentation.model import build_segmenter, compile_segmenter

    if not resume and config.task != "segmentation":
        raise SkinkerasError(f"train_segmentation needs task=segmentation. Received: task={config.task!r}")
    config, run, state = start_run(config, run_dir, resume=resume)
    table, without_mask = prepare_segmentation_data(config, run)
    table = check_images_once(table, run)
    parts = {name: table.subset(table.samples["split"] == name) for name in ("train", "val", "test")}
    sizes = require_parts(table, what="images with masks")
    log.info("%s: %d images with masks (train %d, val %d, test %d), %d without", config.data.dataset,
             len(table), sizes["train"], sizes["val"], sizes["test"], without_mask)

    precision = resolve_precision(config.train.precision)
    strategy = make_strategy(config.train.strategy)

    def build():
        model = build_segmenter(config, None, precision)
        compile_segmenter(model, config, precision)
        return model

    model = build_or_resume(run, state, build, strategy=strategy)
    t = config.train
    batch = config.data.batch_size
    steps = t.steps_per_epoch or max(1, sizes["train"] // batch)
    if config.data.cache and not t.steps_per_epoch:
        # Whole passes (steps=None) over one dataset: a cache only completes (and is then reused)
        # when an iterator reads its input to the end.
        start_epoch = (state or {}).get("epochs_done", 0)
        train_data, epoch_steps = make_dataset(config, parts["train"], training=True, epoch=start_epoch), None
    else:
        train_data = lambda epoch: make_dataset(config, parts["train"], training=True, epoch=epoch)  # noqa: E731
        epoch_steps = steps
    # The schedule may watch another metric (train.monitor); best.keras is always the best val Jaccard.
    result = fit(model, run, train_config=t, state=state, train_data=train_data, steps=epoch_steps,
                 val_data=make_dataset(config, parts["val"], training=False), val_steps=-(-sizes["val"] // batch),
                 monitor=MONITOR if t.monitor == "val_loss" else t.monitor, checkpoint_monitor=MONITOR,
                 images_per_epoch=steps * batch, tensorboard=False, verbose=verbose)
    return write_summary(config, run, result, monitor=MONITOR, precision=precision, split_sizes=sizes,
                         images_without_mask=without_mask)
