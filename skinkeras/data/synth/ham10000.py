"""Generated data in the HAM10000 layout (NOT medical data).

Writes `HAM10000_metadata.csv`, images in `HAM10000_images_part_1/` and `_part_2/` (the Dataverse
release; `single_folder=True` writes one `HAM10000_images/` like the shared copy), masks in
`HAM10000_segmentations_lesion_tschandl/<image_id>_segmentation.png` (0/255), and the notice.
About a third of the lesions get 2-4 images, as in the release, so lesion grouping matters.
Image ids start at ISIC_9000000 so they can never be mistaken for real ones.
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
from skinkeras.data.synth.drawing import make_lesion, render, write_image

CLASS_NAMES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
STYLE_OF_CLASS = {
    "akiec": "akiec", "bcc": "bcc", "bkl": "keratosis", "df": "df",
    "mel": "melanoma", "nv": "nevus", "vasc": "vascular",
}
# The release's class shares (HAM10000: 327, 514, 1099, 115, 1113, 6705, 142 images), floored so
# that small generated sets still have a few lesions of every class.
CLASS_WEIGHTS = np.maximum(np.array([327, 514, 1099, 115, 1113, 6705, 142], float) / 10015, 0.06)
MEAN_AGE = {"akiec": 65, "bcc": 65, "bkl": 60, "df": 50, "mel": 60, "nv": 45, "vasc": 50}
DX_TYPES = {
    "akiec": (("histo", 1.0),),
    "bcc": (("histo", 1.0),),
    "bkl": (("histo", 0.5), ("consensus", 0.35), ("confocal", 0.15)),
    "df": (("histo", 0.5), ("consensus", 0.5)),
    "mel": (("histo", 1.0),),
    "nv": (("follow_up", 0.55), ("histo", 0.35), ("consensus", 0.1)),
    "vasc": (("histo", 0.5), ("consensus", 0.5)),
}
DEFAULT_SIZE = (200, 150)


def _images_per_lesion(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 3, 4], p=[0.68, 0.22, 0.07, 0.03]))


def synthesize_ham10000(out_dir, n: int = 600, seed: int = 0, image_size=None, force: bool = False,
                        single_folder: bool = False, masks: bool = True) -> SynthResult:
    """Write `n` generated images in the HAM10000 layout."""
    check_n(n, 1, "ham10000")
    width, height = parse_image_size(image_size) or DEFAULT_SIZE
    out = prepare_out_dir(out_dir, force)
    rng = np.random.default_rng(seed)

    # Lesions first (each with 1-4 images), until n images are planned.
    per_lesion = []
    while sum(per_lesion) < n:
        per_lesion.append(min(_images_per_lesion(rng), n - sum(per_lesion)))
    lesion_classes = class_sequence(rng, len(per_lesion), CLASS_NAMES, CLASS_WEIGHTS)

    folders = ["HAM10000_images"] if single_folder else ["HAM10000_images_part_1", "HAM10000_images_part_2"]
    for folder in folders:
        (out / folder).mkdir(exist_ok=True)
    mask_folder = out / "HAM10000_segmentations_lesion_tschandl"
    if masks:
        mask_folder.mkdir(exist_ok=True)

    rows = []
    image_number = 0
    for lesion_number, (count, label) in enumerate(zip(per_lesion, lesion_classes)):
        lesion = make_lesion(rng, STYLE_OF_CLASS[label])
        lesion_id = f"HAM_{9000000 + lesion_number:07d}"
        age = draw_age(rng, MEAN_AGE[label])
        sex = draw_sex(rng)
        site = draw_site(rng)
        kinds, probabilities = zip(*DX_TYPES[label])
        dx_type = str(rng.choice(kinds, p=probabilities))
        for _ in range(count):
            image_id = f"ISIC_{9000000 + image_number:07d}"
            folder = folders[0] if image_number < n / len(folders) else folders[-1]
            image, mask = render(lesion, rng, width, height)
            write_image(out / folder / f"{image_id}.jpg", image)
            if masks:
                write_image(mask_folder / f"{image_id}_segmentation.png", mask)
            rows.append((lesion_id, image_id, label, dx_type, age_text(age), sex, site))
            image_number += 1

    order = rng.permutation(len(rows))  # the release's CSV is not in image order either
    with open(out / "HAM10000_metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        writer.writerows(rows[i] for i in order)

    counts = {c: sum(1 for r in rows if r[2] == c) for c in CLASS_NAMES}
    write_notice(out, "ham10000", n, seed, f"image size: {width}x{height}; lesions: {len(per_lesion)}")
    files = ["HAM10000_metadata.csv"] + [f"{f}/" for f in folders]
    if masks:
        files.append(f"{mask_folder.name}/")
    return SynthResult("ham10000", out, n, files + ["README_SYNTHETIC.txt"], counts,
                       notes=f"{len(per_lesion)} lesions, images {width}x{height}")
