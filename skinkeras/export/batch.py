"""Batch prediction: a CSV of images in, a CSV of probabilities out (`skinkeras predict MODEL --csv`).

IN.csv has a column `image` (a path, absolute or relative to the CSV's folder) and optional `age`,
`sex` and `site` (empty: unknown). OUT.csv has one row per input row, in the input's order:

    image        the `image` cell as given
    top_class    the most probable class ("" when the row failed)
    prob_<c>     the probability of class c, one column per class in the model's order
    error        "" when fine, else why this row has no prediction (missing or unreadable image,
                 a bad age / sex / site value)

A failed row does not stop the others. Memory stays flat in the number of rows: the CSV is read
`chunk_rows` rows at a time, each chunk's images are decoded in a thread pool (OpenCV releases the
GIL) one batch ahead of the model, predicted `batch_size` at a time through `Predictor.predict_many`
(one model call per batch for a run; a SavedModel takes a few full-size photos per call), written,
and dropped. OUT.csv is written to a `.partial` sibling and
renamed when complete, so an interrupted run never leaves a complete-looking file.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)

IMAGE, AGE, SEX, SITE, TOP_CLASS, ERROR = "image", "age", "sex", "site", "top_class", "error"
BATCH_SIZE = 32
CHUNK_ROWS = 256
BLANK_AGES = ("", "unknown", "nan", "na", "n/a", "none", "?")


def output_columns(class_names) -> list[str]:
    from skinkeras.evaluation.predictions import PROB_PREFIX

    return [IMAGE, TOP_CLASS, *(PROB_PREFIX + name for name in class_names), ERROR]


def _read_one(reader, path) -> tuple[np.ndarray | None, str]:
    try:
        return reader(path), ""
    except Exception as error:  # noqa: BLE001 - any failure to read is this row's error
        return None, _first_line(error) or type(error).__name__


def decoded_batches(paths, reader, batch_size: int, *, workers: int | None = None):
    """Yields `(start, [(pixels, "") or (None, why)])` for consecutive batches of `paths`, decoded
    by `reader(path)` in a thread pool (OpenCV and TF release the GIL). The next batch is decoded
    while the caller predicts this one, so at most two batches are held, and a photo is predicted
    soon after it is decoded (still in the CPU cache: decoding a whole chunk first was slower).
    A reader's exception becomes that path's message: one bad file never stops the others."""
    batches = [list(paths[k:k + batch_size]) for k in range(0, len(paths), batch_size)]
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
        pending = [pool.submit(_read_one, reader, path) for path in batches[0]]
        for k in range(len(batches)):
            done = [future.result() for future in pending]
            pending = [pool.submit(_read_one, reader, path) for path in batches[k + 1]] if k + 1 < len(batches) else []
            yield k * batch_size, done


def predict_in_batches(predictor, images, metadata, batch_size: int = BATCH_SIZE) -> list[tuple[np.ndarray | None, str]]:
    """`(probabilities, "")` or `(None, why)` per image, `batch_size` images per `predict_many`
    call. A batch the model refuses is retried image by image, so only the bad image fails."""
    results: list[tuple[np.ndarray | None, str]] = []
    for start in range(0, len(images), batch_size):
        chunk, values = images[start:start + batch_size], metadata[start:start + batch_size]
        try:
            results.extend((p, "") for p in predictor.predict_many(chunk, values))
            continue
        except Exception as error:  # noqa: BLE001 - find the image, keep the others
            if len(chunk) == 1:
                results.append((None, f"prediction failed: {type(error).__name__}: {_first_line(error)}"))
                continue
        for pixels, value in zip(chunk, values):
            results.extend(predict_in_batches(predictor, [pixels], [value], 1))
    return results


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def count_rows(csv_path) -> int | None:
    """Data rows of a CSV (quoted newlines counted right), streamed: the progress bar's total
    (None when the file cannot be read this way; reading it properly then says why)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
    except (UnicodeDecodeError, csv.Error):
        return None


def _row_metadata(predictor, row, columns) -> tuple[tuple | None, str]:
    """The row's checked (age, sex, site), or (None, why)."""
    from skinkeras.export.predictor import check_metadata

    age = row[AGE] if AGE in columns else ""
    age = None if age.strip().lower() in BLANK_AGES else age
    sex = (row[SEX] if SEX in columns else "").strip() or None
    site = (row[SITE] if SITE in columns else "").strip() or None
    try:
        return check_metadata(predictor.spec, age, sex, site, option=""), ""
    except SkinkerasError as error:
        return None, str(error)


def _resolve(value: str, folder: Path) -> Path | None:
    if not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else folder / path


def predict_csv(predictor, csv_path, out_path, *, batch_size: int = BATCH_SIZE, chunk_rows: int = CHUNK_ROWS,
                progress: bool = False) -> dict:
    """Predicts every row of `csv_path` into `out_path` (see the module docstring).

    Returns {"rows", "predicted", "failed", "out"}. Bad input as a whole (no such CSV, no `image`
    column, OUT.csv naming the input) raises SkinkerasError; a bad row is only that row's error.
    `progress`: a progress bar on stderr (when stderr is a terminal).
    """
    import pandas as pd
    from tqdm import tqdm

    from skinkeras.data.images import read_image_rgb

    csv_path, out_path = Path(csv_path), Path(out_path)
    if not csv_path.is_file():
        raise SkinkerasError(f"--csv {csv_path}: no such file")
    if out_path.resolve() == csv_path.resolve():
        raise SkinkerasError(f"--out {out_path} is the input CSV; choose another file (an input is never overwritten)")
    if batch_size < 1 or chunk_rows < 1:
        raise SkinkerasError(f"batch and chunk sizes must be positive. Received: {batch_size}, {chunk_rows}")
    try:
        reader = pd.read_csv(csv_path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SkinkerasError(f"cannot read CSV {csv_path}: {_first_line(error)}") from None
    folder = csv_path.resolve().parent
    class_names = predictor.class_names
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    counts = {"rows": 0, "predicted": 0, "failed": 0}
    bar = tqdm(total=count_rows(csv_path), unit="image", file=sys.stderr, disable=None if progress else True,
               desc="predict")
    try:
        with reader, open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(output_columns(class_names))
            for chunk in _chunks(reader, csv_path):
                rows = _predict_chunk(predictor, chunk, folder, read_image_rgb, batch_size)
                for image, probs, error in rows:
                    if probs is None:
                        writer.writerow([image, "", *[""] * len(class_names), error])
                    else:
                        writer.writerow([image, class_names[int(np.argmax(probs))], *(f"{p:.9g}" for p in probs), ""])
                    counts["predicted" if probs is not None else "failed"] += 1
                counts["rows"] += len(rows)
                bar.update(len(rows))
        os.replace(partial, out_path)
    finally:
        bar.close()
        if partial.exists():
            partial.unlink()
    return {**counts, "out": str(out_path)}


def _chunks(reader, csv_path):
    """The CSV's chunks with stripped column names; an error naming a missing `image` column."""
    import pandas as pd

    try:
        for chunk in reader:
            chunk.columns = [str(c).strip().lower() for c in chunk.columns]
            if IMAGE not in chunk.columns:
                raise SkinkerasError(f"CSV {csv_path} needs a column '{IMAGE}' (optional: {AGE}, {SEX}, {SITE}); "
                                     f"found {list(chunk.columns)}")
            yield chunk
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise SkinkerasError(f"cannot read CSV {csv_path}: {_first_line(error)}") from None


def _predict_chunk(predictor, chunk, folder: Path, reader, batch_size: int) -> list[tuple[str, np.ndarray | None, str]]:
    """(image cell, probabilities or None, error) per row of one chunk, in order."""
    columns = set(chunk.columns)
    results: list[list] = []
    todo = []  # positions whose metadata and path are fine: their images are read next
    for position, row in enumerate(chunk.to_dict("records")):
        image = row[IMAGE]
        values, error = _row_metadata(predictor, row, columns)
        path = _resolve(image, folder)
        if path is None:
            error = error or "empty image cell"
        results.append([image, None, error, path, values])
        if not error:
            todo.append(position)
    for start, decoded in decoded_batches([results[p][3] for p in todo], reader, batch_size):
        readable = []
        for position, (pixels, error) in zip(todo[start:start + len(decoded)], decoded):
            if pixels is None:
                results[position][2] = error
            else:
                readable.append((position, pixels))
        predicted = predict_in_batches(predictor, [pixels for _, pixels in readable],
                                       [results[p][4] for p, _ in readable], batch_size)
        for (position, _), (probs, error) in zip(readable, predicted):
            results[position][1], results[position][2] = probs, error
    return [(image, probs, error) for image, probs, error, _, _ in results]
