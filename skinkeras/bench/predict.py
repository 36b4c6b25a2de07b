"""Images per second of batch prediction (`predict MODEL --csv`) against a loop of single-image predictions.

Both paths run in this process on the same image files, with the model loaded once and warmed up:
`--csv` is `skinkeras.export.batch.predict_csv` (the CSV streamed in chunks, images decoded in a
thread pool, `--batch-size` images per model call; a TFLite model still takes one image per call),
the loop is what `skinkeras predict MODEL IMAGE` does for each image (read, prepare, one model
call). A shell loop of `skinkeras predict` processes would also pay the start-up and the model load
for every image (seconds each); that is left out, so the ratio is the least the batch path gains.
Images: `--images` generated files of `--size` (smooth colour fields saved as JPEG, decoded like
photos), or the rows of your own `--csv`. Both paths' probabilities are compared (max |dp|).

Example:
    skinkeras bench predict runs/sa/export/saved_model --images 256 --size 450x600
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a run directory, a SavedModel folder or a .tflite file")
    parser.add_argument("--images", type=int, default=128, help="generated images (without --csv)")
    parser.add_argument("--size", default="450x600", help="HEIGHTxWIDTH of the generated images (HAM10000's)")
    parser.add_argument("--csv", help="your own images instead: a CSV with an image column (as predict --csv)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per model call of the --csv path")
    parser.add_argument("--repeats", type=int, default=3, help="alternated timings of both paths; the best counts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def generate_images(folder: Path, count: int, size: str) -> Path:
    """`count` smooth random colour fields of `size` as JPEGs, and a CSV listing them."""
    import cv2
    import numpy as np

    from skinkeras.errors import SkinkerasError

    try:
        height, width = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise SkinkerasError(f"--size must be HEIGHTxWIDTH, e.g. 450x600. Received: {size!r}") from None
    if count < 1 or height < 1 or width < 1:
        raise SkinkerasError(f"--images and --size must be positive. Received: {count}, {size}")
    rng = np.random.default_rng(0)
    names = []
    for k in range(count):
        coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
        names.append(f"image_{k:05d}.jpg")
        cv2.imwrite(str(folder / names[-1]), image)
    csv_path = folder / "images.csv"
    csv_path.write_text("image\n" + "\n".join(names) + "\n")
    return csv_path


def measure(args) -> dict:
    import numpy as np
    import pandas as pd

    from skinkeras.export.batch import predict_csv
    from skinkeras.export.predictor import read_image
    from skinkeras.runs import load_predictor

    predictor = load_predictor(args.model)
    with tempfile.TemporaryDirectory(prefix="skinkeras_bench_predict_") as tmp:
        tmp = Path(tmp)
        csv_path = Path(args.csv) if args.csv else generate_images(tmp, args.images, args.size)
        paths = [p if Path(p).is_absolute() else csv_path.resolve().parent / p
                 for p in pd.read_csv(csv_path, dtype=str, keep_default_na=False)["image"]]
        # Warm-up: the first calls trace graphs (Keras, SavedModel) and fill caches.
        warm = tmp / "warm.csv"
        warm.write_text("image\n" + "\n".join(str(p) for p in paths[:args.batch_size]) + "\n")
        predict_csv(predictor, warm, tmp / "warm_out.csv", batch_size=args.batch_size)
        predictor.predict(read_image(paths[0]))

        # Alternated, best of --repeats: on a shared machine the least disturbed run is the one
        # that measures the code.
        batch_seconds, single_seconds = [], []
        for _ in range(max(1, args.repeats)):
            start = time.perf_counter()
            summary = predict_csv(predictor, csv_path, tmp / "out.csv", batch_size=args.batch_size)
            batch_seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            single_probs = np.stack([predictor.predict(read_image(path)) for path in paths])
            single_seconds.append(time.perf_counter() - start)
        batch_probs = pd.read_csv(tmp / "out.csv")[[f"prob_{c}" for c in predictor.class_names]].to_numpy()
        batch_seconds, single_seconds = min(batch_seconds), min(single_seconds)
    n = len(paths)
    return {
        "model": str(args.model), "kind": predictor.kind, "images": n, "failed": summary["failed"],
        "image_size": args.size if not args.csv else "as given", "batch_size": args.batch_size,
        "repeats": max(1, args.repeats),
        "csv_images_per_s": n / batch_seconds, "single_images_per_s": n / single_seconds,
        "speedup": single_seconds / batch_seconds,
        "max_abs_diff": float(np.nanmax(np.abs(batch_probs - single_probs))),
    }


def run(args) -> int:
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['images']} images ({result['image_size']}), {result['kind']} {result['model']}, "
          f"best of {result['repeats']}:")
    print(f"  predict --csv (batch {result['batch_size']}): {result['csv_images_per_s']:8.1f} images/s")
    print(f"  single predict calls:     {result['single_images_per_s']:8.1f} images/s")
    print(f"  speed-up {result['speedup']:.2f}x; max |dp| between the two {result['max_abs_diff']:.2g}")
    return 0
