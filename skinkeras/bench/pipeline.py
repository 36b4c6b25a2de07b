"""Images/s and peak memory of the tf.data pipeline vs a single-process PIL + NumPy loader.

Measures decoded + augmented images per second through `make_classification_dataset` (training
mode: shuffle, decode, resize, one composed affine warp per image, brightness / contrast; the
per-batch warp is timed too) on a HAM10000 copy, and the same work done by
`skinkeras.bench.baseline_loader`.
Each configuration runs in a fresh subprocess that reports its own RSS high-water mark (VmHWM), so
peak memory over all images can be compared with that over a smaller number (a streaming pipeline
should not grow with the dataset). Throughput excludes the first batch (graph tracing, warm-up);
CPU % and images per CPU-second show how many cores each run really got on a shared machine.

Example:
    skinkeras bench pipeline --root ../shared/data/ham10000 --image-size 224 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

TARGET_SPEEDUP = 4.0
TARGET_MEMORY_RATIO = 1.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="HAM10000 folder (HAM10000_metadata.csv + images)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="images in the full run (default: all)")
    parser.add_argument(
        "--small", type=int, default=1000, help="images in the small run that peak memory is compared with"
    )
    parser.add_argument(
        "--baseline-limit",
        type=int,
        default=None,
        help="images through the PIL baseline (default: as many as the full run)",
    )
    parser.add_argument(
        "--baseline-backend",
        choices=("pil", "scipy"),
        default="pil",
        help="baseline warp: PIL (default, faster) or scipy.ndimage as Keras' ImageDataGenerator",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of every configuration, interleaved; reports the median images/s and the max peak RSS",
    )
    parser.add_argument(
        "--skip-per-batch", action="store_true", help="do not time the per-batch augmentation alternative"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args) -> int:
    from skinkeras.errors import SkinkerasError

    total = len(load_samples(args.root))
    full = total if args.limit is None else min(args.limit, total)
    small = min(args.small, full)
    baseline = full if args.baseline_limit is None else min(args.baseline_limit, full)
    common = {
        "root": str(args.root),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    if args.repeats < 1:
        raise SkinkerasError(f"--repeats must be at least 1. Received: --repeats {args.repeats}")
    configs = {
        "pipeline_small": dict(common, loader="pipeline", limit=small),
        "pipeline_full": dict(common, loader="pipeline", limit=full),
        "baseline": dict(common, loader="baseline", limit=baseline, backend=args.baseline_backend),
    }
    if not args.skip_per_batch:
        # The pipeline's default augments per image; time the per-batch alternative as well.
        configs["pipeline_small_augment_per_batch"] = dict(
            common, loader="pipeline", limit=small, augment_on="batch"
        )
    # Interleaved, so that load from other processes on a shared machine hits every configuration.
    results = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, config in configs.items():
            results[name].append(_spawn(config))
    runs = {name: _combine(found) for name, found in results.items()}
    failed = [name for name, result in runs.items() if "error" in result]
    if failed:
        raise SkinkerasError(f"benchmark run {failed[0]} failed: {runs[failed[0]]['error']}")
    speedup = runs["pipeline_full"]["images_per_s"] / runs["baseline"]["images_per_s"]
    memory_ratio = runs["pipeline_full"]["peak_rss_mb"] / runs["pipeline_small"]["peak_rss_mb"]
    report = {
        "settings": dict(
            common,
            full_images=full,
            small_images=small,
            baseline_images=baseline,
            baseline_backend=args.baseline_backend,
            repeats=args.repeats,
            cpu_count=os.cpu_count(),
            usable_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        ),
        "runs": runs,
        "pipeline_images_per_s": runs["pipeline_full"]["images_per_s"],
        "baseline_images_per_s": runs["baseline"]["images_per_s"],
        "speedup": speedup,
        "peak_rss_mb_small": runs["pipeline_small"]["peak_rss_mb"],
        "peak_rss_mb_full": runs["pipeline_full"]["peak_rss_mb"],
        "memory_ratio": memory_ratio,
        "targets": {"speedup": TARGET_SPEEDUP, "memory_ratio": TARGET_MEMORY_RATIO},
        "meets_targets": {
            "speedup": speedup >= TARGET_SPEEDUP,
            "memory_ratio": memory_ratio <= TARGET_MEMORY_RATIO,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 0


def _print_table(report) -> None:
    settings = report["settings"]
    print(f"{'run':<34} {'images':>7} {'images/s':>9} {'CPU %':>6} {'img/CPU-s':>9} {'peak RSS MB':>12}")
    for name, result in report["runs"].items():
        print(
            f"{name:<34} {result['images']:>7} {result['images_per_s']:>9.1f} {result['cpu_percent']:>6.0f} "
            f"{result['images_per_cpu_s']:>9.1f} {result['peak_rss_mb']:>12.0f}"
        )
    print(
        f"speedup pipeline / baseline: {report['speedup']:.2f}x (target >= {TARGET_SPEEDUP}x); "
        f"peak memory {settings['full_images']} / {settings['small_images']} images: "
        f"{report['memory_ratio']:.2f}x (target <= {TARGET_MEMORY_RATIO}x)"
    )
    print(
        f"note: {settings['usable_cpus']} usable CPU cores (os.cpu_count() = {settings['cpu_count']}); "
        f"the baseline uses one, the pipeline all it can get (see CPU %: other processes count)"
    )


# ---- children --------------------------------------------------------------------------------------
def load_samples(root):
    """The HAM10000 samples frame (image_id, image_path, label_index, ...), in CSV order.

    Uses the dataset registry's HAM10000 loader; reads the CSV directly when that loader is not
    available (kept small so it can be dropped once the loader is everywhere).
    """
    try:
        from skinkeras.data.registry import load_dataset
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        return load_dataset("ham10000", root)
    return _minimal_ham10000_table(root)


def _minimal_ham10000_table(root):
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from skinkeras.data.table import SampleTable

    root = Path(root)
    frame = pd.read_csv(root / "HAM10000_metadata.csv")
    classes = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    samples = pd.DataFrame(
        {
            "image_id": frame["image_id"],
            "image_path": [str(root / "HAM10000_images" / f"{i}.jpg") for i in frame["image_id"]],
            "label": frame["dx"],
            "label_index": [classes.index(d) for d in frame["dx"]],
            "lesion_id": frame["lesion_id"],
            "age": frame["age"].astype(float),
            "sex": frame["sex"].fillna("unknown"),
            "site": frame["localization"].fillna("unknown"),
            "mask_path": "",
            "split": "",
        }
    )
    samples["age"] = samples["age"].where(np.isfinite(samples["age"]))
    return SampleTable("ham10000", root, samples, classes)


def _combine(results: list[dict]) -> dict:
    """One configuration's repeats: median images/s, max peak RSS, every images/s kept."""
    import statistics

    errors = [r for r in results if "error" in r]
    if errors:
        return errors[0]
    combined = dict(results[0])
    speeds = [r["images_per_s"] for r in results]
    combined["images_per_s"] = statistics.median(speeds)
    combined["images_per_s_each"] = speeds
    combined["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    for key in ("cpu_percent", "images_per_cpu_s"):
        combined[key] = statistics.median(r[key] for r in results)
    return combined


def _spawn(config: dict) -> dict:
    command = [sys.executable, "-m", "skinkeras.bench.pipeline", json.dumps(config)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {process.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def _child(config: dict) -> dict:
    table = load_samples(config["root"])
    table = table.subset(table.samples.index[: config["limit"]])
    if config["loader"] == "pipeline":
        from skinkeras.data.pipeline import make_classification_dataset

        start = time.perf_counter()
        dataset = make_classification_dataset(
            table,
            image_size=config["image_size"],
            batch_size=config["batch_size"],
            training=True,
            seed=config["seed"],
            augment_on=config.get("augment_on", "image"),
            **config.get("pipeline_options", {}),
        )
        setup_s = time.perf_counter() - start
        batches = (features["image"] for features, _ in dataset)
    else:
        from skinkeras.bench.baseline_loader import baseline_batches

        start = time.perf_counter()
        batches = baseline_batches(
            table.samples["image_path"].tolist(),
            config["image_size"],
            config["batch_size"],
            config["seed"],
            backend=config.get("backend", "pil"),
        )
        setup_s = time.perf_counter() - start
    images = 0
    first_batch = 0
    timer = None
    cpu_start = 0.0
    for batch in batches:
        if timer is None:
            first_batch = int(batch.shape[0])
            timer = time.perf_counter()
            cpu_start = _cpu_seconds()
        images += int(batch.shape[0])
    elapsed = time.perf_counter() - timer if timer is not None else 0.0
    cpu = _cpu_seconds() - cpu_start if timer is not None else 0.0
    timed = images - first_batch
    return {
        "loader": config["loader"],
        "augment_on": config.get("augment_on", "image") if config["loader"] == "pipeline" else "image",
        "images": images,
        "setup_s": setup_s,
        "seconds": elapsed,
        "images_per_s": timed / elapsed if elapsed > 0 and timed > 0 else float("nan"),
        # CPU use shows how many cores a run actually got on a shared machine.
        "cpu_percent": 100.0 * cpu / elapsed if elapsed > 0 else float("nan"),
        "images_per_cpu_s": timed / cpu if cpu > 0 and timed > 0 else float("nan"),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
