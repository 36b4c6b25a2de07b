"""Reading and checking image files: any PNG/JPEG variant in, 8-bit RGB out.

Dermoscopy releases are 8-bit RGB JPEGs, but a user's own folder may hold grayscale, RGBA or 16-bit
PNGs, and a copy interrupted half-way leaves truncated files. `check_images` finds both kinds before
training (`UNREADABLE` excludes the image, `CONVERTED` only notes it) and `read_image_rgb` converts
whatever is readable the same way every time.

Decoding uses OpenCV (`cv2.imdecode`): it releases the GIL, so a thread pool scales, and it keeps
16-bit samples (Pillow silently reduces 16-bit RGB PNGs to 8 bits, so it cannot report them).
OpenCV 5 refuses truncated JPEGs, older versions only warned; we also require the JPEG end-of-image
marker so a truncated file is caught whatever the OpenCV version.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from skinkeras.data.table import CONVERTED, UNREADABLE, Problem
from skinkeras.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

# Largest image read, in pixels (width x height), checked from the file header before decoding: a
# 20000 x 20000 JPEG took 9 GB to predict. 100 MP is 3x the largest ISIC 2017 image (6688 x 4439).
# SKINKERAS_MAX_IMAGE_PIXELS overrides it (0: no limit).
MAX_IMAGE_PIXELS = 100_000_000
MAX_PIXELS_ENV = "SKINKERAS_MAX_IMAGE_PIXELS"

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _default_workers() -> int:
    return min(8, (os.cpu_count() or 1) + 1)


def _read_bytes(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def max_image_pixels() -> int:
    """The pixel limit in force (`MAX_IMAGE_PIXELS` or SKINKERAS_MAX_IMAGE_PIXELS; 0: none)."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return MAX_IMAGE_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise DataError(f"{MAX_PIXELS_ENV} must be a number of pixels (0: no limit). Received: {raw!r}") from None
    if value < 0:
        raise DataError(f"{MAX_PIXELS_ENV} must be >= 0. Received: {raw!r}")
    return value


def _check_pixel_limit(path) -> None:
    """ValueError before decoding an image whose header says it is over the pixel limit."""
    limit = max_image_pixels()
    if not limit:
        return
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except Image.DecompressionBombError as error:  # Pillow's own limit, lower than ours may be
        match = re.search(r"\((\d+) pixels\)", str(error))
        pixels = int(match.group(1)) if match else None
        if pixels is None or pixels > limit:
            raise ValueError(f"{pixels or 'too many'} pixels, over the limit of {limit:,} "
                             f"(set {MAX_PIXELS_ENV} to raise it)") from None
        return
    except Exception:  # noqa: BLE001 - no readable header: the decoder says what is wrong
        return
    if width * height > limit:
        raise ValueError(f"{width} x {height} pixels, over the limit of {limit:,} "
                         f"(set {MAX_PIXELS_ENV} to raise it)")


def _jpeg_is_truncated(data: bytes) -> bool:
    # A complete JPEG ends with the EOI marker; some writers pad after it, so look near the end.
    # Inside entropy-coded data 0xFF is always stuffed (FF 00), so FF D9 cannot occur by chance.
    return _JPEG_END not in data[-1024:]


def _decode(data: bytes, path) -> np.ndarray:
    """Decode bytes as stored (channels, bit depth) or raise ValueError saying why not."""
    import cv2

    if not data:
        raise ValueError("empty file")
    if data.startswith(_JPEG_START) and _jpeg_is_truncated(data):
        raise ValueError("truncated JPEG (no end-of-image marker)")
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        kind = "PNG" if data.startswith(_PNG_SIGNATURE) else "JPEG" if data.startswith(_JPEG_START) else "image"
        raise ValueError(f"cannot decode {kind} data (corrupt, truncated or not an image)")
    return array


# PNG colour types (IHDR byte 25); OpenCV expands grayscale+alpha and palettes, so read the header.
_PNG_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


def _describe(array: np.ndarray, data: bytes = b"") -> str:
    """'' for 8-bit RGB, else what the stored image is (grayscale, RGBA, 16-bit, ...)."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    names = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}
    kind = names.get(channels, f"{channels}-channel")
    bits = array.dtype.itemsize * 8
    if data.startswith(_PNG_SIGNATURE) and len(data) > 25:
        kind = _PNG_COLOUR_TYPES.get(data[25], kind)
        bits = data[24] if data[25] != 3 else 8
    parts = []
    if bits != 8:
        parts.append(f"{bits}-bit")
    if kind != "RGB":
        parts.append(kind)
    if not parts:
        return ""
    return " ".join(parts) + " converted to 8-bit RGB"


def _to_rgb8(array: np.ndarray) -> np.ndarray:
    import cv2

    if array.dtype == np.uint16:
        # Round to the nearest 8-bit value: 65535 -> 255, 257 * k -> k.
        array = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    channels = array.shape[2]
    if channels == 1:
        return cv2.cvtColor(array[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:
        # Grayscale + alpha: the alpha is dropped (dermoscopy has no meaningful transparency).
        return cv2.cvtColor(np.ascontiguousarray(array[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def read_image_rgb(path) -> np.ndarray:
    """Read an image file as uint8 RGB of shape (H, W, 3).

    Grayscale is repeated on three channels, alpha is dropped, 16-bit samples are rounded to 8 bits.
    OpenCV's BGR order is converted, so the result is really RGB.

    Raises:
        DataError: the file is missing, truncated, not a decodable image or over the pixel limit
            (`max_image_pixels`); the message names the path.
    """
    try:
        data = _read_bytes(path)
    except OSError as error:
        raise DataError(f"cannot read image {path}: {error.strerror or error}") from None
    try:
        _check_pixel_limit(path)
        array = _decode(data, path)
    except ValueError as error:
        raise DataError(f"cannot read image {path}: {error}") from None
    return _to_rgb8(array)


def inspect_image(path) -> tuple[int, int, str]:
    """Decode one file and return (width, height, conversion note); raises ValueError if unreadable."""
    try:
        data = _read_bytes(path)
    except OSError as error:
        raise ValueError(error.strerror or str(error)) from None
    _check_pixel_limit(path)
    array = _decode(data, path)
    return int(array.shape[1]), int(array.shape[0]), _describe(array, data[:32])


def header_size(path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding pixels; None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # noqa: BLE001 - any unreadable header just means "size unknown"
        return None


# The formats TensorFlow's `tf.io.decode_image` (the training / evaluation pipeline's decoder) picks
# by their first bytes, as it does; OpenCV also reads TIFF, JPEG 2000, ..., which that decoder refuses
# ("Unknown image file format"), so a file OpenCV reads may still be dropped by training.
_PIPELINE_SIGNATURES = {"JPEG": (b"\xff\xd8\xff",), "PNG": (_PNG_SIGNATURE,), "GIF": (b"GIF87a", b"GIF89a"),
                        "BMP": (b"BM",), "JPEG XL": (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")}


def pipeline_decodable(header: bytes) -> bool:
    """Whether the training pipeline's decoder reads a file starting with `header` (>= 12 bytes)."""
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return True
    return any(header.startswith(sig) for sigs in _PIPELINE_SIGNATURES.values() for sig in sigs)


def check_image(path, image_id: str | None = None) -> tuple[Problem | None, tuple[int, int] | None]:
    """Decode one file: (problem or None, (width, height) or None). A file the training pipeline's
    decoder cannot read (TIFF, ...) is UNREADABLE even when OpenCV decodes it."""
    image_id = image_id if image_id is not None else Path(path).stem
    try:
        width, height, note = inspect_image(path)
        with open(path, "rb") as handle:
            if not pipeline_decodable(handle.read(16)):
                raise ValueError(f"{Path(path).suffix or 'this'} format: training reads JPEG, PNG, BMP, GIF and "
                                 "WebP only (tf.io.decode_image); convert it to PNG")
    except ValueError as error:
        return Problem(image_id, UNREADABLE, f"{path}: {error}"), None
    if note:
        return Problem(image_id, CONVERTED, note), (width, height)
    return None, (width, height)


def check_images_with_sizes(
    paths: Sequence, image_ids: Sequence[str] | None = None, workers: int | None = None
) -> tuple[list[Problem], list[tuple[int, int] | None]]:
    """`check_images` that also returns each file's (width, height) (None when unreadable)."""
    paths = [str(p) for p in paths]
    ids = list(image_ids) if image_ids is not None else [Path(p).stem for p in paths]
    if len(ids) != len(paths):
        raise ValueError(f"got {len(paths)} paths but {len(ids)} image ids")
    if not paths:
        return [], []
    with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool:
        results = list(pool.map(check_image, paths, ids, chunksize=64))
    problems = [problem for problem, _ in results if problem is not None]
    sizes = [size for _, size in results]
    return problems, sizes


def check_images(paths: Iterable, image_ids: Sequence[str] | None = None, workers: int | None = None) -> list[Problem]:
    """Decode every file and report what is wrong with it.

    Returns one `Problem` per bad file, in input order: `UNREADABLE` for corrupt, truncated or
    missing files (these must be excluded) and `CONVERTED` for readable files that are not 8-bit
    RGB (grayscale, RGBA, 16-bit; `read_image_rgb` converts them). Image ids default to file stems.
    """
    problems, _ = check_images_with_sizes(list(paths), image_ids, workers)
    return problems


def header_sizes(paths: Sequence, workers: int | None = None) -> list[tuple[int, int] | None]:
    """`header_size` for many files, in a thread pool (header reads are I/O bound)."""
    paths = [str(p) for p in paths]
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=workers or _default_workers()) as pool:
        return list(pool.map(header_size, paths, chunksize=64))
