"""Generated data in the `folder` layout (a user's own CSV + images), NOT medical data.

Writes `labels.csv` (image,label,lesion_id,age,sex,site) and `images/<label>/<id>.jpg`; the `image`
column holds paths relative to the folder. Classes default to three of the HAM10000-like styles.
"""

from __future__ import annotations

import csv

import numpy as np

from skinkeras.data.synth.common import (
    SynthResult,
    age_text,
    check_n,
    class_sequence,
    draw_age,
    draw_sex,
    draw_site,
    parse_image_size,
    prepare_out_dir,
    write_notice,
)
from skinkeras.data.synth.drawing import STYLES, make_lesion, render, write_image
from skinkeras.errors import DataError

DEFAULT_CLASSES = ("keratosis", "melanoma", "nevus")
DEFAULT_SIZE = (128, 128)


def synthesize_folder(out_dir, n: int = 60, seed: int = 0, image_size=None, force: bool = False,
                      class_names=DEFAULT_CLASSES) -> SynthResult:
    """Write `n` generated images + labels.csv; class names must be drawing styles (see STYLES)."""
    class_names = tuple(class_names)
    unknown = [c for c in class_names if c not in STYLES]
    if unknown:
        raise DataError(f"no drawing style for class(es) {unknown}; valid: {sorted(STYLES)}")
    check_n(n, len(class_names), "folder")
    width, height = parse_image_size(image_size) or DEFAULT_SIZE
    out = prepare_out_dir(out_dir, force)
    rng = np.random.default_rng(seed)
    rows, counts = [], {c: 0 for c in class_names}
    for number, label in enumerate(class_sequence(rng, n, class_names, np.ones(len(class_names)), minimum_each=1)):
        (out / "images" / label).mkdir(parents=True, exist_ok=True)
        relative = f"images/{label}/img{number:05d}.jpg"
        write_image(out / relative, render(make_lesion(rng, label), rng, width, height)[0])
        rows.append((relative, label, f"lesion{number:05d}", age_text(draw_age(rng, 50)), draw_sex(rng), draw_site(rng)))
        counts[label] += 1
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("image", "label", "lesion_id", "age", "sex", "site"), *rows])
    write_notice(out, "folder", n, seed, f"image size: {width}x{height}; classes: {list(class_names)}")
    return SynthResult("folder", out, n, ["labels.csv", "images/", "README_SYNTHETIC.txt"], counts)
