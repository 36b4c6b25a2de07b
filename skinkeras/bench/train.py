"""Training throughput: images/s of one training step and the share of step time spent waiting for input.

Runs the experiment's real pipeline and model (default: MobileNetV3Large + soft attention +
metadata at 224 px, batch 32) for a number of steps with `train_on_batch`, timing separately the
wait for the next batch (`next(iterator)` on the prefetched dataset) and the step itself. A
pipeline that keeps up shows a wait share near zero. The first steps (graph tracing, cache
filling) are excluded. With `--precision` several policies can be compared in one run (on a GPU:
float32 vs mixed_float16).
"""

from __future__ import annotations

import json
import time


def add_arguments(parser) -> None:
    parser.add_argument("--root", default="", help="HAM10000 folder (default: generate a synthetic set)")
    parser.add_argument("--experiment", default="ham10000_soft_attention")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per policy")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        help="dtype policies to compare, e.g. float32 mixed_float16")
    parser.add_argument("--jit-compile", nargs="+", default=["auto"], choices=["auto", "true", "false"],
                        help="XLA compilation of the step to compare (auto: Keras' choice, off on a CPU)")
    parser.add_argument("--freeze-bn", nargs="+", default=["false"], choices=["false", "true"],
                        help="also time steps with BatchNormalization frozen (the recipe's last epochs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment config field")
    parser.add_argument("--json", action="store_true")


def measure(root: str, experiment: str, image_size: int, batch_size: int, steps: int, warmup: int,
            precision: str, overrides=(), jit_compile: str = "auto", freeze_bn: bool = False) -> dict:
    import tempfile

    import keras

    from skinkeras.engine.run_directory import RunDirectory
    from skinkeras.experiments import apply_overrides, get_experiment
    from skinkeras.systems.classification.data import make_dataset, prepare_data
    from skinkeras.systems.classification.model import build_model
    from skinkeras.training.objectives import (
        class_counts,
        classification_loss,
        optimizer,
    )

    tmp = tempfile.TemporaryDirectory()
    run = RunDirectory(tmp.name)
    config = apply_overrides(get_experiment(experiment).get_config(), [
        f"data.root={root}", f"data.image_size={image_size}", f"data.batch_size={batch_size}",
        f"train.precision={precision}", "model.weights=", *overrides])  # throughput: any init will do
    data = prepare_data(config, run)
    model = build_model(config, data, precision)
    counts = class_counts(data.part("train"), len(data.class_names))
    if freeze_bn:
        from skinkeras.engine.fit import freeze_batch_norm

        freeze_batch_norm(model, quiet=True)
    model.compile(optimizer=optimizer(config.train, precision), loss=classification_loss(config.train, counts),
                  jit_compile={"auto": "auto", "true": True, "false": False}[jit_compile])
    dataset = make_dataset(config, data, "train", training=True).repeat()
    iterator = iter(dataset)
    wait = step = 0.0
    for index in range(warmup + steps):
        t0 = time.perf_counter()
        features, labels = next(iterator)
        t1 = time.perf_counter()
        loss = model.train_on_batch(features, labels, return_dict=True)["loss"]
        t2 = time.perf_counter()
        if index >= warmup:
            wait += t1 - t0
            step += t2 - t1
    total = wait + step
    keras.backend.clear_session()
    tmp.cleanup()
    return {
        "backbone": config.model.backbone,
        "head": config.model.head,
        "image_size": image_size,
        "batch_size": batch_size,
        "precision": precision,
        "jit_compile": jit_compile,
        "freeze_bn": freeze_bn,
        "steps": steps,
        "train_images_per_second": round(steps * batch_size / total, 2),
        "input_wait_share": round(wait / total, 4),
        "mean_step_seconds": round(total / steps, 4),
        "final_loss": float(loss),
    }


def run(args) -> int:
    import os
    import tempfile

    root = args.root
    if not root:
        from skinkeras.data.synth import synthesize

        root = os.path.join(tempfile.mkdtemp(), "synthetic_ham10000")
        synthesize("ham10000", root, n=max(200, args.batch_size * (args.steps + args.warmup) // 4), seed=0)
    rows = [measure(root, args.experiment, args.image_size, args.batch_size, args.steps, args.warmup, p,
                    args.overrides, jit_compile=jit, freeze_bn=frozen == "true")
            for p in args.precision for jit in args.jit_compile for frozen in args.freeze_bn]
    if args.json:
        print(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2))
        return 0
    print(f"{'backbone':<18}{'size':>6}{'batch':>7}{'precision':>16}{'jit':>6}{'frozen BN':>10}{'img/s':>9}"
          f"{'ms/step':>9}{'input wait':>12}")
    for r in rows:
        print(f"{r['backbone']:<18}{r['image_size']:>6}{r['batch_size']:>7}{r['precision']:>16}{r['jit_compile']:>6}"
              f"{'yes' if r['freeze_bn'] else 'no':>10}{r['train_images_per_second']:>9.1f}"
              f"{1000 * r['mean_step_seconds']:>9.0f}{r['input_wait_share']:>11.1%}")
    print(f"({os.cpu_count()} CPU cores; wait = time blocked on the next batch / total step time)")
    return 0
