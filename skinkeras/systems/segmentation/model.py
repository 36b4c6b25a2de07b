"""The segmenter of a segmentation experiment, and loading a trained one from its run."""

from __future__ import annotations

from skinkeras.engine.run_directory import as_run
from skinkeras.errors import SkinkerasError


def build_segmenter(config, info=None, dtype=None):
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


def compile_segmenter(model, config, precision: str | None = None) -> None:
    from skinkeras.segmentation.losses import DiceBCELoss, MeanDice, MeanJaccard
    from skinkeras.training.objectives import optimizer

    seg = config.segmentation
    model.compile(
        optimizer=optimizer(config.train, precision),
        loss=DiceBCELoss(seg.dice_weight, seg.bce_weight),
        metrics=[
            MeanJaccard(seg.threshold, name="jaccard"),
            MeanJaccard(seg.threshold, cut=0.65, name="thresholded_jaccard"),
            MeanDice(seg.threshold, name="dice"),
        ],
    )


def load_segmenter(run_dir, which: str = "best"):
    """The run's best (or last) segmenter, loaded in Keras safe mode, and its input image size.

    Returns:
        (model, image_size): the model maps raw RGB 0..255 `[B, S, S, 3]` to probabilities
        `[B, S, S, 1]`, S = image_size (from preprocessing.json).
    """
    from skinkeras.engine.run_directory import load_run_model

    run = as_run(run_dir)
    if not run.preprocessing.exists():
        raise SkinkerasError(f"{run.path} is not a segmentation run: it has no {run.preprocessing.name}")
    preprocessing = run.read_preprocessing()
    if preprocessing.get("task") != "segmentation":
        raise SkinkerasError(f"{run.path} is not a segmentation run (task {preprocessing.get('task')!r})")
    return load_run_model(run, which), int(preprocessing["image_size"])
