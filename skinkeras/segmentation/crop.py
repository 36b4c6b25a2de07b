"""The lesion-crop stage of paper 002: segment, take the lesion's bounding box (with a margin), crop
and resize to the classifier input.

`crop_table` turns a `SampleTable` into one whose images are lesion crops written under `out_dir`
(never into the dataset folder). The mask of a row is its own `mask_path` when it has one (and
`use_given_masks`), else the segmenter's prediction. Only the largest connected component counts
(a hair or a dark corner predicted as lesion does not stretch the box); an empty mask falls back to
the whole image, resized, and is counted.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)


def largest_component(mask) -> np.ndarray:
    """The largest 8-connected foreground component of a 2-D boolean mask (all False if empty)."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W). Received: shape={mask.shape}")
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    if count == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def lesion_box(mask, margin: float = 0.1):
    """Bounding box `(y0, x0, y1, x1)` (end-exclusive) of the mask's largest component, grown by
    `margin` times the box's height / width on each side and clipped to the image; None if empty.

    Example:
        >>> m = np.zeros((10, 10), bool); m[2:6, 3:5] = True
        >>> lesion_box(m, margin=0.0)
        (2, 3, 6, 5)
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0. Received: margin={margin}")
    component = largest_component(mask)
    rows = np.flatnonzero(component.any(axis=1))
    cols = np.flatnonzero(component.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    grow_y = int(round(margin * (y1 - y0)))
    grow_x = int(round(margin * (x1 - x0)))
    height, width = component.shape
    return max(0, y0 - grow_y), max(0, x0 - grow_x), min(height, y1 + grow_y), min(width, x1 + grow_x)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    # INTER_AREA when shrinking (no aliasing), linear when enlarging.
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def crop_lesion(image, mask, size: int, margin: float = 0.1):
    """Crops the lesion box of `mask` out of `image` and resizes it to `size` x `size`.

    A mask of another resolution than the image (a segmenter's output) is mapped onto it by
    scaling the box. Returns `(crop uint8 [size, size, 3], found)`; with no lesion in the mask,
    the whole image resized and found=False.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3). Received: shape={image.shape}")
    image = np.clip(image, 0, 255).astype(np.uint8)
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    box = lesion_box(mask > 0.5 if mask.dtype != bool else mask, margin)
    if box is None:
        return _resize(image, size), False
    y0, x0, y1, x1 = box
    scale_y, scale_x = image.shape[0] / mask.shape[0], image.shape[1] / mask.shape[1]
    y0, y1 = int(np.floor(y0 * scale_y)), max(int(np.ceil(y1 * scale_y)), int(np.floor(y0 * scale_y)) + 1)
    x0, x1 = int(np.floor(x0 * scale_x)), max(int(np.ceil(x1 * scale_x)), int(np.floor(x0 * scale_x)) + 1)
    return _resize(image[y0:y1, x0:x1], size), True


def predict_masks(segmenter, images, image_size: int, batch_size: int = 16):
    """Lesion probabilities of a list of uint8 images `[H_i, W_i, 3]` at their own sizes: each
    image resized to the segmenter's `image_size` square (with the training pipeline's resize:
    bilinear, antialiased when shrinking), predicted in batches, the probability map resized back
    (bilinear)."""
    import cv2

    from skinkeras.preprocessing.crops import resize

    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = np.stack([np.asarray(resize(img, (image_size, image_size))) for img in chunk])
        probabilities = np.asarray(segmenter.predict_on_batch(batch), dtype=np.float32)[..., 0]
        outputs.extend(
            cv2.resize(p, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
            for p, img in zip(probabilities, chunk)
        )
    return outputs


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def crop_table(
    table,
    out_dir,
    *,
    image_size: int,
    margin: float = 0.1,
    segmenter=None,
    segmenter_image_size: int | None = None,
    batch_size: int = 16,
    use_given_masks: bool = True,
    image_format: str = "png",
    threshold: float = 0.5,
    progress: bool | None = None,
):
    """Writes the lesion crop of every row under `out_dir` and returns the table pointing at them.

    Args:
        table: a `SampleTable`.
        out_dir: folder for the crops (created; must not be inside the dataset's root).
        image_size: side of the square crops.
        margin: bounding-box margin as a fraction of the box size.
        segmenter: a model from `load_segmenter` (needed for rows without a usable mask).
        segmenter_image_size: its input size (the second value `load_segmenter` returns).
        batch_size: images per segmenter call.
        use_given_masks: use a row's `mask_path` when it has one (False: always predict).
        image_format: "png" (lossless) or "jpg".
        threshold: probability -> mask.
        progress: show a progress bar (default: for more than 200 images).

    Returns:
        `(SampleTable, stats)`: a copy of the table with `image_path` at the crops and `mask_path`
        cleared; stats `{"images", "given_masks", "predicted_masks", "fallback_whole_image"}`.
    """
    from skinkeras.data.images import read_image_rgb

    if image_format not in ("png", "jpg"):
        raise SkinkerasError(f"image_format must be png or jpg. Received: {image_format!r}")
    out_dir = Path(out_dir)
    if table.root and _inside(out_dir, Path(table.root)):
        raise SkinkerasError(f"crops must not be written into the dataset folder {table.root}. Received: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = table.samples.reset_index(drop=True)
    mask_paths = samples["mask_path"].fillna("").astype(str) if "mask_path" in samples else None
    given = (mask_paths != "").to_numpy() if (use_given_masks and mask_paths is not None) \
        else np.zeros(len(samples), dtype=bool)
    if (~given).any() and segmenter is None:
        raise SkinkerasError(
            f"{int((~given).sum())} images have no mask to use and no segmenter was given (segmenter=...)")
    if segmenter is not None and not segmenter_image_size:
        raise SkinkerasError("segmenter_image_size is needed with a segmenter (see load_segmenter)")
    show = progress if progress is not None else len(samples) > 200
    bar = None
    if show:
        import keras

        bar = keras.utils.Progbar(len(samples), unit_name="image")
    new_paths = [""] * len(samples)
    stats = {"images": len(samples), "given_masks": 0, "predicted_masks": 0, "fallback_whole_image": 0}
    fallback_ids = []
    order = np.arange(len(samples))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        images = [read_image_rgb(samples.at[i, "image_path"]) for i in rows]
        masks = [None] * len(rows)
        for k, i in enumerate(rows):
            if given[i]:
                masks[k] = read_mask(mask_paths.iat[i])
        predict = [k for k, i in enumerate(rows) if not given[i]]
        if predict:
            predicted = predict_masks(segmenter, [images[k] for k in predict], segmenter_image_size,
                                      batch_size)
            for k, probabilities in zip(predict, predicted):
                masks[k] = probabilities > threshold
        for k, i in enumerate(rows):
            crop, found = crop_lesion(images[k], masks[k], image_size, margin)
            stats["given_masks" if given[i] else "predicted_masks"] += 1
            if not found:
                stats["fallback_whole_image"] += 1
                fallback_ids.append(str(samples.at[i, "image_id"]))
            path = out_dir / f"{samples.at[i, 'image_id']}.{image_format}"
            _write_rgb(path, crop)
            new_paths[i] = str(path)
        if bar is not None:
            bar.add(len(rows))
    if fallback_ids:
        log.warning("%d of %d images had an empty lesion mask; their whole image was used: %s",
                    len(fallback_ids), len(samples), ", ".join(fallback_ids[:20]))
    samples = samples.copy()
    samples["image_path"] = new_paths
    samples["mask_path"] = ""
    return dataclasses.replace(table, samples=samples), stats


def read_mask(path) -> np.ndarray:
    """A lesion mask file as a boolean `[H, W]` array (foreground above half range)."""
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise SkinkerasError(f"cannot read the lesion mask {path}")
    return mask > 127


def _write_rgb(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise SkinkerasError(f"could not write the crop {path}")
