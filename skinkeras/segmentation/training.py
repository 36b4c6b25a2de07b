"""Training a lesion segmenter (experiment task "segmentation"; paper 002's U-Net).

The run directory has the classification trainer's layout (skinkeras.training.trainer): config.json,
split.csv (lesion-grouped train / val / test over the WHOLE dataset, so that with the same
`data.split_fractions` and `data.split_seed` a classification run on the same data gets the same
split and a two-stage run does not segment its test images with a model trained on them),
preprocessing.json (`task`, `image_size`), checkpoints/ (resumable), best.keras (best validation
Jaccard), history.csv, run.json. Only images with a mask are used; how many lacked one is logged
and written to run.json.

Without a cache each epoch streams a dataset whose order and augmentation depend on (seed, epoch)
only, so `--resume` replays exactly. With `data.cache` the training dataset is built once per
session (a cache would otherwise be rebuilt every epoch): a resumed run then continues with another
shuffle order than an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from skinkeras.errors import SkinkerasError
from skinkeras.experiments.config import ExperimentConfig, load_config, save_config

log = logging.getLogger(__name__)

MONITOR = "val_jaccard"  # best.keras is the model at the best validation Jaccard


def build_segmenter(config: ExperimentConfig, dtype=None):
    """The segmentation model of `config.segmentation` (input size free)."""
    from skinkeras.models.unet import build_unet, build_unet_encoder

    seg = config.segmentation
    if seg.architecture == "unet":
        return build_unet((None, None, 3), base_filters=seg.base_filters, dtype=dtype)
    if seg.architecture == "unet_encoder":
        if not seg.encoder:
            raise SkinkerasError("segmentation.architecture=unet_encoder needs segmentation.encoder (e.g. MobileNetV2)")
        try:
            return build_unet_encoder(seg.encoder, (None, None, 3), config.model.weights or None, dtype=dtype)
        except ValueError as error:
            raise SkinkerasError(str(error)) from None
    raise SkinkerasError(f"segmentation.architecture must be unet or unet_encoder. Received: {seg.architecture!r}")


def compile_segmenter(model, config: ExperimentConfig) -> None:
    from skinkeras.segmentation.losses import DiceBCELoss, MeanDice, MeanJaccard
    from skinkeras.training.trainer import _optimizer

    seg = config.segmentation
    model.compile(
        optimizer=_optimizer(config),
        loss=DiceBCELoss(seg.dice_weight, seg.bce_weight),
        metrics=[
            MeanJaccard(seg.threshold, name="jaccard"),
            MeanJaccard(seg.threshold, cut=0.65, name="thresholded_jaccard"),
            MeanDice(seg.threshold, name="dice"),
        ],
    )


def prepare_segmentation_data(config: ExperimentConfig, run_dir: Path):
    """The dataset with a `split` column (reusing the run's split.csv), images without a mask
    removed. Writes split.csv (first time), preprocessing.json and skipped.json. Returns
    (table, number of images without a mask)."""
    from skinkeras.training.trainer import PREPROCESSING_FILE, load_split_table

    table = load_split_table(config, run_dir)
    has_mask = table.samples["mask_path"].fillna("").astype(str) != ""
    without_mask = int((~has_mask).sum())
    if without_mask:
        log.warning("%d of %d images have no mask and are left out", without_mask, len(table))
    table = table.subset(has_mask)
    if not len(table):
        raise SkinkerasError(f"no image of {config.data.dataset} at {config.data.root} has a lesion mask")
    if config.data.limit:
        # Smoke runs: a random sample of the training part only; val / test stay whole.
        samples = table.samples
        train = samples[samples["split"] == "train"]
        drop = train.index.difference(train.sample(n=min(len(train), config.data.limit),
                                                   random_state=config.train.seed).index)
        table = table.subset(~samples.index.isin(drop))
    (run_dir / PREPROCESSING_FILE).write_text(json.dumps({
        "task": "segmentation",
        "dataset": config.data.dataset,
        "image_size": config.data.image_size,
        "threshold": config.segmentation.threshold,
        "input": "raw RGB 0..255, scaled inside the model; output: lesion probability per pixel",
    }, indent=2) + "\n")
    return table, without_mask


def _dataset(config: ExperimentConfig, table, *, training: bool, epoch: int = 0):
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


def train_segmentation(config: ExperimentConfig, run_dir, *, resume: bool = False, verbose="auto") -> dict:
    """Trains `config`'s segmenter into `run_dir` (or continues it with `resume=True`)."""
    import keras

    from skinkeras.saving import load_model
    from skinkeras.training import callbacks as cb
    from skinkeras.training.runtime import make_strategy, resolve_precision
    from skinkeras.training.trainer import (
        RunData,
        _end_after_one_epoch_callback,
        _reseed_model,
        _stop_requested,
        check_images_once,
        run_callbacks,
        run_summary,
    )

    run_dir = Path(run_dir)
    state = cb.load_run_state(run_dir) if resume else None
    if resume:
        if state is None:
            raise SkinkerasError(f"nothing to resume in {run_dir}: it has no checkpoints/state.json")
        config = load_config(run_dir / "config.json")
    elif (run_dir / "checkpoints" / "state.json").exists():
        raise SkinkerasError(f"{run_dir} already holds a run: continue it with --resume or choose another --out")
    if config.task != "segmentation":
        raise SkinkerasError(f"train_segmentation needs task=segmentation. Received: task={config.task!r}")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.json")
    keras.utils.set_random_seed(config.train.seed)

    table, without_mask = prepare_segmentation_data(config, run_dir)
    table = check_images_once(RunData(table=table, class_names=(), metadata=None), run_dir).table
    parts = {name: table.subset(table.samples["split"] == name) for name in ("train", "val", "test")}
    sizes = {name: len(part) for name, part in parts.items()}
    for name in ("train", "val"):
        if not sizes[name]:
            raise SkinkerasError(f"the {name} split is empty: {len(table)} images with masks in all")
    log.info("%s: %d images with masks (train %d, val %d, test %d), %d without", config.data.dataset,
             len(table), sizes["train"], sizes["val"], sizes["test"], without_mask)

    precision = resolve_precision(config.train.precision)
    strategy = make_strategy(config.train.strategy)
    with strategy.scope():
        if state is not None:
            model = load_model(run_dir / "checkpoints" / "last.keras")
        else:
            model = build_segmenter(config, precision)
            compile_segmenter(model, config)

    t = config.train
    # The schedule may watch another metric (train.monitor); best.keras is always the best val Jaccard.
    monitor = MONITOR if t.monitor == "val_loss" else t.monitor
    stateful, callbacks = run_callbacks(config, run_dir, state, monitor=monitor, checkpoint_monitor=MONITOR,
                                        tensorboard=False)

    val = _dataset(config, parts["val"], training=False)
    start_epoch = (state or {}).get("epochs_done", 0)
    steps = t.steps_per_epoch or max(1, sizes["train"] // config.data.batch_size)
    val_steps = -(-sizes["val"] // config.data.batch_size)
    cached_train = None
    started = time.monotonic()
    images_seen = 0
    for epoch in range(start_epoch, t.epochs):
        if _stop_requested(stateful):
            break
        epoch_steps = steps
        if config.data.cache and not t.steps_per_epoch:
            # Whole passes (steps=None) over one dataset: a cache only completes (and is then
            # reused) when an iterator reads its input to the end.
            if cached_train is None:
                cached_train = _dataset(config, parts["train"], training=True, epoch=epoch)
            train_ds, epoch_steps = cached_train, None
        else:
            train_ds = _dataset(config, parts["train"], training=True, epoch=epoch)
        _reseed_model(model, t.seed, epoch)
        if t.steps_per_epoch:
            train_ds = train_ds.repeat()
        model.fit(train_ds, validation_data=val, epochs=t.epochs, initial_epoch=epoch,
                  steps_per_epoch=epoch_steps, validation_steps=val_steps, shuffle=False,
                  callbacks=callbacks + [_end_after_one_epoch_callback()], verbose=verbose)
        images_seen += steps * config.data.batch_size
    summary = run_summary(config, run_dir, monitor=MONITOR, elapsed=time.monotonic() - started,
                          images_seen=images_seen, precision=precision, split_sizes=sizes,
                          images_without_mask=without_mask)
    (run_dir / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_segmenter(run_dir, which: str = "best"):
    """The run's best (or last) segmenter, loaded in Keras safe mode, and its input image size.

    Returns:
        (model, image_size): the model maps raw RGB 0..255 `[B, S, S, 3]` to probabilities
        `[B, S, S, 1]`, S = image_size (from preprocessing.json).
    """
    from skinkeras.training.trainer import PREPROCESSING_FILE, load_run_model

    run_dir = Path(run_dir)
    path = run_dir / PREPROCESSING_FILE
    if not path.exists():
        raise SkinkerasError(f"{run_dir} is not a segmentation run: it has no {PREPROCESSING_FILE}")
    preprocessing = json.loads(path.read_text())
    if preprocessing.get("task") != "segmentation":
        raise SkinkerasError(f"{run_dir} is not a segmentation run (task {preprocessing.get('task')!r})")
    return load_run_model(run_dir, which), int(preprocessing["image_size"])
