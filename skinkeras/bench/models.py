"""Parameters, depth and CPU inference images/s of each backbone with the soft-attention head.

For each registry backbone: the paper-001 classifier (soft-attention head, 7 classes, no
metadata) at the backbone's default input size, random weights. Throughput is images per second
of `model.predict_on_batch` on one batch (after one warm-up batch that traces the graph), the best
of `--runs`. Beside our figures: the keras.io applications documentation figures for the plain
backbone with its ImageNet top (weights size, top-1, parameters, depth, ms per batch of 32 on a
92-core EPYC CPU), so they compare only in spirit: different model tops, batch and machine.

Example:
    skinkeras bench models --backbones MobileNetV3Large DenseNet201 --runs 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbones", nargs="+", default=None, help="registry names (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="timed batches per backbone (best is kept)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--image-size", type=int, default=None, help="override every backbone's default size (smoke tests)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def measure(name: str, *, runs: int, batch_size: int, image_size: int | None) -> dict:
    import numpy as np

    from skinkeras.models.backbones import get_backbone_spec
    from skinkeras.models.classifier import ClassifierConfig, build_classifier
    from skinkeras.models.inspection import parameter_counts, weighted_depth

    spec = get_backbone_spec(name)
    size = image_size or spec.default_size
    start = time.perf_counter()
    model = build_classifier(ClassifierConfig(name, "soft_attention", num_classes=7, image_size=size))
    build_s = time.perf_counter() - start
    images = np.random.default_rng(0).uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    model.predict_on_batch({"image": images})  # warm-up: traces the graph
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict_on_batch({"image": images})
        times.append(time.perf_counter() - start)
    best = min(times)
    doc = spec.documented
    return {
        "backbone": name,
        "image_size": size,
        **{f"params_{k}": v for k, v in parameter_counts(model).items()},
        "depth": weighted_depth(model),
        "build_s": round(build_s, 2),
        "batch_size": batch_size,
        "ms_per_batch": round(best * 1000, 1),
        "images_per_s": round(batch_size / best, 2),
        "doc_size_mb": doc.size_mb if doc else None,
        "doc_top1": doc.top1 if doc else None,
        "doc_params_m": doc.params_m if doc else None,
        "doc_depth": doc.depth if doc else None,
        "doc_cpu_ms_per_batch32": doc.cpu_ms if doc else None,
    }


def _table(rows: list[dict]) -> str:
    def fmt(value, spec=""):
        return "-" if value is None else format(value, spec)

    header = (
        "backbone", "size", "params", "depth", "img/s", "ms/batch",
        "|", "doc MB", "top-1", "params", "depth", "CPU ms/32",
    )
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["backbone"], str(r["image_size"]), f'{r["params_total"]:,}', str(r["depth"]),
                fmt(r["images_per_s"], ".1f"), fmt(r["ms_per_batch"], ".0f"),
                "|", fmt(r["doc_size_mb"]), fmt(r["doc_top1"], ".1f"),
                fmt(r["doc_params_m"] and f'{r["doc_params_m"]}M'), fmt(r["doc_depth"]),
                fmt(r["doc_cpu_ms_per_batch32"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in lines
    )
    return (
        text
        + f"\nOurs: soft-attention classifier (7 classes, no metadata), random weights, batch {rows[0]['batch_size']}, "
        f"{os.cpu_count()} CPU cores visible. 'doc': keras.io/api/applications figures for the plain "
        "backbone with its ImageNet top (CPU ms per batch of 32 on a 92-core AMD EPYC)."
    )


def run(args) -> int:
    from skinkeras.errors import ConfigError
    from skinkeras.models.backbones import backbone_names

    names = args.backbones or backbone_names()
    unknown = [n for n in names if n not in backbone_names()]
    if unknown:
        raise ConfigError(f"Unknown backbone(s) {unknown}. Expected some of {', '.join(backbone_names())}")
    if args.runs < 1 or args.batch_size < 1:
        raise ConfigError(f"--runs and --batch-size must be positive. Received: {args.runs}, {args.batch_size}")
    rows = []
    for name in names:
        rows.append(measure(name, runs=args.runs, batch_size=args.batch_size, image_size=args.image_size))
        if not args.json:
            print(f"measured {name}", flush=True)
    print(json.dumps(rows, indent=2) if args.json else _table(rows))
    return 0
