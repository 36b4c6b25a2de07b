"""Size, single-image CPU latency and accuracy of a run's exports (Keras, SavedModel, TFLite).

For the run's best model: the Keras model (`model(x, training=False)` on one prepared image), the
serving SavedModel (one raw uint8 image of its original size: resize and metadata encoding are in
the graph) and the TFLite float32 / float16 / dynamic / int8 models run by the LiteRT interpreter
with 1 and 2 threads (`num_threads`). Latency is the median (and 90th percentile) of `--runs`
single-image calls after `--warmup` calls. TensorFlow's intra-op thread pool is fixed when the
process starts, so the Keras and SavedModel rows use TF's default (every core) and say so.
TFLite rows also give the number of XNNPACK (delegate) partitions the graph runs in: 1 means the
whole graph runs in XNNPACK. Accuracy: top-1 agreement with the Keras model and balanced accuracy
on `--limit` images of the run's test split. Exports are taken from RUN_DIR/export/ when present,
else written to a temporary folder (unverified: this command measures, `skinkeras export`
verifies).

Example:
    skinkeras bench export runs/ham10000 --runs 200 --limit 300 --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

VARIANTS = ("keras", "saved_model", "float32", "float16", "dynamic", "int8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `skinkeras train`")
    parser.add_argument("--data-root", help="dataset folder (default: the run's config data.root)")
    parser.add_argument("--runs", type=int, default=200, help="timed single-image calls per variant")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first")
    parser.add_argument("--limit", type=int, default=300, help="held-out images for agreement / accuracy")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="LiteRT num_threads values")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def _latency(call, runs: int, warmup: int) -> tuple[float, float]:
    import numpy as np

    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000), float(np.percentile(times, 90) * 1000)


def _export(run_dir, variant: str, tmp: Path, data_root, model) -> Path:
    """The variant's export path: RUN_DIR/export/... when present, else a fresh one in `tmp`."""
    from skinkeras.export.litert import MODEL_FILE
    from skinkeras.export.run_export import default_out_dir, export_run

    fmt = "saved_model" if variant == "saved_model" else "tflite"
    existing = default_out_dir(run_dir, fmt, variant)
    if (existing / ("saved_model.pb" if fmt == "saved_model" else MODEL_FILE)).exists():
        return existing
    result = export_run(run_dir, fmt, quantize=variant if fmt == "tflite" else "float32",
                        out_dir=tmp / variant, verify=False, data_root=data_root, model=model)
    return Path(result["path"])


def measure(args) -> list[dict]:
    import numpy as np
    import tensorflow as tf

    from skinkeras.engine.run_directory import RunDirectory, load_run_model
    from skinkeras.export.litert import MODEL_FILE, LiteRTModel
    from skinkeras.export.samples import held_out_table, iterate_samples
    from skinkeras.export.serving import directory_size, load_run_spec
    from skinkeras.export.verify import SavedModelRunner, compare_predictions

    run_dir = Path(args.run_dir)
    spec = load_run_spec(run_dir)
    model = load_run_model(run_dir)
    table = held_out_table(run_dir, args.data_root, "test", limit=args.limit)
    samples = list(iterate_samples(table, spec))
    labels = np.array([s[0] for s in samples])
    images = np.stack([s[1] for s in samples])
    metadata = np.stack([s[2] for s in samples]) if spec.metadata is not None else None
    inputs = {"image": images} if metadata is None else {"image": images, "metadata": metadata}
    keras_probs = np.concatenate([model.predict_on_batch({k: v[i:i + 32] for k, v in inputs.items()})
                                  for i in range(0, len(images), 32)])
    one = {k: tf.constant(v[:1]) for k, v in inputs.items()}
    rows = []

    def row(variant, threads, size, latency, probs, partitions=None):
        figures = compare_predictions("float32" if variant == "keras" else variant, keras_probs, probs, labels,
                                      spec.class_names)
        rows.append({"variant": variant, "threads": threads, "size_mb": round(size / 1e6, 2),
                     "median_ms": round(latency[0], 2), "p90_ms": round(latency[1], 2),
                     "top1_agreement": figures["top1_agreement"],
                     "balanced_accuracy": figures["balanced_accuracy_export"],
                     "balanced_accuracy_change": figures["balanced_accuracy_change"], "n": len(labels),
                     "delegate_partitions": partitions})

    with tempfile.TemporaryDirectory(prefix="skinkeras_bench_export_") as tmp:
        for variant in args.variants:
            if variant == "keras":
                size = RunDirectory(run_dir).best_model.stat().st_size
                latency = _latency(lambda: model(one, training=False), args.runs, args.warmup)
                row("keras", "tf", size, latency, keras_probs)
                continue
            path = _export(run_dir, variant, Path(tmp), args.data_root, model)
            if variant == "saved_model":
                runner = SavedModelRunner(path)
                raw = list(iterate_samples(table, spec, raw=True))
                probs = np.concatenate([runner.predict_raw([r[3] for r in raw[i:i + 32]],
                                                           [r[4] for r in raw[i:i + 32]])
                                        for i in range(0, len(raw), 32)])
                first = raw[0]
                latency = _latency(lambda: runner.predict_raw([first[3]], [first[4]]), args.runs, args.warmup)
                row("saved_model", "tf", directory_size(path / "variables") + (path / "saved_model.pb").stat().st_size,
                    latency, probs)
                continue
            for threads in args.threads:
                lite = LiteRTModel(path / MODEL_FILE, num_threads=threads)
                probs = np.stack([lite.predict(s[1], s[2]) for s in samples])
                latency = _latency(lambda: lite.predict(samples[0][1], samples[0][2]), args.runs, args.warmup)
                row(variant, threads, (path / MODEL_FILE).stat().st_size, latency, probs, lite.delegate_partitions())
    return rows


def _table(rows: list[dict]) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    lines = [f"{'variant':<12} {'threads':>7} {'MB':>7} {'median ms':>10} {'p90 ms':>8} {'top-1 agr':>9} "
             f"{'bal acc':>8} {'change':>7} {'partitions':>10}"]
    for r in rows:
        lines.append(f"{r['variant']:<12} {str(r['threads']):>7} {r['size_mb']:>7.2f} {r['median_ms']:>10.2f} "
                     f"{r['p90_ms']:>8.2f} {fmt(r['top1_agreement'], '.2%'):>9} "
                     f"{fmt(r['balanced_accuracy'], '.4f'):>8} {fmt(r['balanced_accuracy_change'], '+.4f'):>7} "
                     f"{fmt(r.get('delegate_partitions'), 'd'):>10}")
    by = {(r["variant"], r["threads"]): r for r in rows}
    for threads in sorted({r["threads"] for r in rows if isinstance(r["threads"], int)}):
        if ("int8", threads) in by and ("float32", threads) in by:
            lines.append(f"int8 / float32 TFLite, {threads} thread(s): latency "
                         f"{by['int8', threads]['median_ms'] / by['float32', threads]['median_ms']:.2f}x, size "
                         f"1/{by['float32', threads]['size_mb'] / max(by['int8', threads]['size_mb'], 1e-9):.2f}")
    split = {r["variant"]: r["delegate_partitions"] for r in rows if (r.get("delegate_partitions") or 0) > 1}
    if split:
        lines.append("more than one XNNPACK partition: " + ", ".join(f"{v} ({n})" for v, n in split.items())
                     + ". Ops XNNPACK cannot run in that precision (e.g. MobileNetV3's HARD_SWISH in int8) run between "
                     "partitions as TFLite kernels, and each switch costs time (see --int8-split-hard-swish)")
    return "\n".join(lines)


def run(args) -> int:
    rows = measure(args)
    print(json.dumps(rows, indent=2) if args.json else _table(rows))
    return 0
