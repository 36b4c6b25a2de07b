"""Generated data in the ISIC 2017 Part 3 layout (NOT medical data).

Writes, for each split (Training, Validation, Test_v2 by default, as released): `ISIC-2017_<Split>_Data/<id>.jpg`,
`ISIC-2017_<Split>_Part3_GroundTruth.csv` (image_id,melanoma,seborrheic_keratosis as 0.0/1.0),
`ISIC-2017_<Split>_Data_metadata.csv` (image_id,age_approximate,sex with some "unknown"), Part 1
masks `ISIC-2017_<Split>_Part1_GroundTruth/<id>_segmentation.png`, and the notice.
One image per lesion, as in the release. Image ids start at ISIC_9100000.
"""

from __future__ import annotations

import csv

import numpy as np

from skinkeras.data.isic2017 import SPLITS, data_folder, ground_truth_csv, mask_folder, metadata_csv
from skinkeras.data.synth.common import (
    SynthResult,
    check_n,
    class_sequence,
    draw_age,
    draw_sex,
    parse_image_size,
    prepare_out_dir,
    write_notice,
)
from skinkeras.data.synth.drawing import make_lesion, render, write_image
from skinkeras.errors import DataError

CLASS_NAMES = ("melanoma", "seborrheic_keratosis", "nevus")
STYLE_OF_CLASS = {"melanoma": "melanoma", "seborrheic_keratosis": "keratosis", "nevus": "nevus"}
# Training-set shares of the release (374 / 254 / 1372 of 2,000), floored at 0.2.
CLASS_WEIGHTS = np.maximum(np.array([374, 254, 1372], float) / 2000, 0.2)
MEAN_AGE = {"melanoma": 62, "seborrheic_keratosis": 65, "nevus": 42}
DEFAULT_SIZE = (256, 256)
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def _split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Images per split: proportional, at least one each (an empty ground-truth CSV is not a release)."""
    names = list(fractions)
    sizes = {name: max(1, int(np.floor(n * fractions[name]))) for name in names}
    while sum(sizes.values()) > n:
        sizes[max(sizes, key=sizes.get)] -= 1
    sizes[names[0]] += n - sum(sizes.values())
    return sizes


def synthesize_isic2017(out_dir, n: int = 300, seed: int = 0, image_size=None, force: bool = False,
                        fractions: dict[str, float] | None = None, masks: bool = True,
                        metadata: bool = True) -> SynthResult:
    """Write `n` generated images in the ISIC 2017 Part 3 layout, split train/val/test by `fractions`."""
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    unknown = [s for s in fractions if s not in SPLITS]
    if unknown:
        raise DataError(f"unknown ISIC 2017 split(s) {unknown}; valid: {list(SPLITS)}")
    check_n(n, len(fractions), "isic2017")
    width, height = parse_image_size(image_size) or DEFAULT_SIZE
    out = prepare_out_dir(out_dir, force)
    rng = np.random.default_rng(seed)
    counts = {c: 0 for c in CLASS_NAMES}
    files = []
    image_number = 0
    for split, size in _split_sizes(n, fractions).items():
        images_dir = out / data_folder(split)
        images_dir.mkdir(exist_ok=True)
        masks_dir = out / mask_folder(split)
        if masks:
            masks_dir.mkdir(exist_ok=True)
        truth_rows, meta_rows = [], []
        for label in class_sequence(rng, size, CLASS_NAMES, CLASS_WEIGHTS, minimum_each=1):
            image_id = f"ISIC_{9100000 + image_number:07d}"
            image_number += 1
            image, mask = render(make_lesion(rng, STYLE_OF_CLASS[label]), rng, width, height)
            write_image(images_dir / f"{image_id}.jpg", image)
            if masks:
                write_image(masks_dir / f"{image_id}_segmentation.png", mask)
            truth_rows.append((image_id, f"{float(label == 'melanoma'):.1f}", f"{float(label == 'seborrheic_keratosis'):.1f}"))
            age = draw_age(rng, MEAN_AGE[label], missing=0.1)
            meta_rows.append((image_id, "unknown" if np.isnan(age) else str(int(age)), draw_sex(rng, unknown=0.1)))
            counts[label] += 1
        with open(out / ground_truth_csv(split), "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([("image_id", "melanoma", "seborrheic_keratosis"), *truth_rows])
        files += [ground_truth_csv(split), f"{images_dir.name}/"]
        if metadata:
            with open(out / metadata_csv(split), "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows([("image_id", "age_approximate", "sex"), *meta_rows])
            files.append(metadata_csv(split))
        if masks:
            files.append(f"{masks_dir.name}/")
    write_notice(out, "isic2017", n, seed, f"image size: {width}x{height}; splits: {fractions}")
    return SynthResult("isic2017", out, n, files + ["README_SYNTHETIC.txt"], counts,
                       notes=f"images {width}x{height}; splits {_split_sizes(n, fractions)}")
