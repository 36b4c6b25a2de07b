"""Which initial backbone weights a run trains from: ImageNet where they can be had, else the
from-scratch recipe, said in one line.

Every paper trains from ImageNet weights, so the paper configs ask for `model.weights="imagenet"`.
Keras downloads them on first use (into ~/.keras/models) and reads that copy afterwards; a machine
without network access, or a backbone Keras has no ImageNet weights for, cannot have them. Such a
run does not fail: it trains from random initialisation with the from-scratch recipe
(`skinkeras.experiments.presets.from_scratch_fallback`), logs one line saying so, and records it
in run.json (`backbone_weights`) and the model card. A local weights file (`model.weights=PATH`)
is used as given; a missing one is an error, not a fallback.

`SKINKERAS_OFFLINE=1` skips the download attempt (the tests set it: no network in tests).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

OFFLINE_ENV = "SKINKERAS_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True)
class WeightsChoice:
    """What was asked for, what is used ("" = random initialisation) and, for a fallback, why."""

    requested: str
    used: str
    reason: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def imagenet_unavailable(backbone: str, image_size: int) -> str:
    """Why ImageNet weights for `backbone` cannot be had here ("" when they can: then they are in
    Keras' cache afterwards)."""
    from skinkeras.models.backbones import build_backbone, get_backbone_spec

    if not get_backbone_spec(backbone).imagenet_weights:
        return f"Keras has no ImageNet weights for {backbone}"
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return f"{OFFLINE_ENV} is set"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an unreachable host fails in seconds, not minutes
    try:
        build_backbone(backbone, (image_size, image_size, 3), "imagenet")
    except Exception as error:  # noqa: BLE001 - any failure to fetch or read them means "not here"
        text = str(error).strip().splitlines()
        return f"download failed: {type(error).__name__}: {text[0] if text else ''}"[:200]
    finally:
        socket.setdefaulttimeout(previous)
    return ""


def resolve_weights(config):
    """`(config, WeightsChoice)`: the config to train (unchanged, or the from-scratch fallback for
    ImageNet weights that cannot be had) and the choice made."""
    from skinkeras.experiments.presets import from_scratch_fallback

    requested = config.model.weights or ""
    if requested == "":
        return config, WeightsChoice("", "")
    if requested != "imagenet":
        if not os.path.isfile(requested):
            raise SkinkerasError(f"model.weights: no weights file at {requested!r} "
                                 "(give 'imagenet', a weights file, or '' for random initialisation)")
        return config, WeightsChoice(requested, requested)
    reason = imagenet_unavailable(config.model.backbone, config.data.image_size)
    if not reason:
        return config, WeightsChoice("imagenet", "imagenet")
    log.warning("ImageNet weights for %s cannot be had (%s): training from random initialisation with "
                "the from-scratch recipe instead", config.model.backbone, reason)
    return from_scratch_fallback(config), WeightsChoice("imagenet", "", reason)
