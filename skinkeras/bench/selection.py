"""Cost of SPL / OHEM sample selection per train step, relative to plain cross-entropy (paper 003).

Builds the same classifier three times (same seed): compiled with plain CEL, with
`SelectedLoss(mode="spl")` and with `SelectedLoss(mode="ohem")`, and runs `train_on_batch` on one
fixed random batch. The three models take their steps in turn (cel, spl, ohem, cel, ...), so that
a load that changes during the run (another job on the machine) hits all three alike; the figure is
the median of the timed steps. The selection adds a sort of M numbers and a scatter per step, so
the goal is a ratio <= 1.05; on a tiny model the fixed cost of a step weighs most.

Example:
    skinkeras bench selection --backbone TinyCNN --image-size 64 --batch-size 20 --steps 30
"""

from __future__ import annotations

import json
import os
import statistics
import time

VARIANTS = ("cel", "spl", "ohem")


def add_arguments(parser) -> None:
    parser.add_argument("--backbone", default="TinyCNN", help="backbone registry name")
    parser.add_argument("--head", default="gap", help="gap | se | cbam | soft_attention")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=20, help="M (paper 003: 20)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loss")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps per loss (tracing)")
    parser.add_argument("--epoch", type=int, default=0, help="the selection's epoch (m = M/2 at 0)")
    parser.add_argument("--json", action="store_true")


def _loss(variant: str, epochs: int):
    from skinkeras.training.losses import build_loss
    from skinkeras.training.selection import SelectedLoss

    if variant == "cel":
        return build_loss("cce")
    return SelectedLoss(build_loss("cce"), mode=variant, epochs=epochs)


def measure(backbone: str, head: str, image_size: int, batch_size: int, steps: int, warmup: int,
            epoch: int = 0, num_classes: int = 7) -> dict:
    import keras
    import numpy as np

    from skinkeras.models.classifier import ClassifierConfig, build_classifier

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    labels = np.eye(num_classes, dtype="float32")[rng.integers(0, num_classes, batch_size)]
    models = {}
    for variant in VARIANTS:
        keras.utils.set_random_seed(0)
        model = build_classifier(ClassifierConfig(backbone, head, num_classes=num_classes, image_size=image_size))
        loss = _loss(variant, epochs=150)
        if variant != "cel":
            loss.set_epoch(epoch)
        model.compile(keras.optimizers.Adam(1e-4), loss)
        models[variant] = model
    times = {variant: [] for variant in VARIANTS}
    losses = {}
    for index in range(warmup + steps):
        for variant, model in models.items():
            start = time.perf_counter()
            losses[variant] = model.train_on_batch({"image": images}, labels, return_dict=True)["loss"]
            elapsed = time.perf_counter() - start
            if index >= warmup:
                times[variant].append(elapsed)
    keras.backend.clear_session()
    ms = {variant: statistics.median(values) * 1000 for variant, values in times.items()}
    return {
        "backbone": backbone, "head": head, "image_size": image_size, "batch_size": batch_size,
        "steps": steps, "epoch": epoch, "cpu_count": os.cpu_count(),
        "ms_per_step": {variant: round(value, 2) for variant, value in ms.items()},
        "ratio_to_cel": {variant: round(value / ms["cel"], 3) for variant, value in ms.items()},
        "final_loss": {variant: float(value) for variant, value in losses.items()},
    }


def run(args) -> int:
    result = measure(args.backbone, args.head, args.image_size, args.batch_size, args.steps, args.warmup,
                     args.epoch)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['backbone']} + {result['head']}, {result['image_size']} px, batch {result['batch_size']}, "
          f"{result['steps']} timed steps each (median), selection epoch {result['epoch']}")
    print(f"{'loss':<8}{'ms/step':>10}{'x CEL':>8}")
    for variant in VARIANTS:
        print(f"{variant:<8}{result['ms_per_step'][variant]:>10.2f}{result['ratio_to_cel'][variant]:>8.3f}")
    print(f"({result['cpu_count']} CPU cores; goal: spl and ohem <= 1.05 x cel)")
    return 0
