"""Generated data in the derm7pt layout (NOT medical data): clinical + dermoscopic pairs.

Writes `meta/meta.csv` with the release's columns, `images/<folder>/<name>.jpg` (one clinical view,
small blurry lesion on a wide field, and one dermoscopic view per case), the official-split files
`meta/{train,valid,test}_indexes.csv` (column `indexes`, 0-based row positions) and the notice.
Diagnoses come from the release's vocabulary, so the loader's 5-group mapping is exercised.
"""

from __future__ import annotations

import csv

import numpy as np

from skinkeras.data.derm7pt import CLASS_NAMES, DIAGNOSIS_GROUPS, SPLIT_FILES
from skinkeras.data.synth.common import (
    SynthResult,
    check_n,
    class_sequence,
    draw_sex,
    parse_image_size,
    prepare_out_dir,
    write_notice,
)
from skinkeras.data.synth.drawing import make_lesion, render, write_image

STYLE_OF_CLASS = {"BCC": "bcc", "NEV": "nevus", "MEL": "melanoma", "MISC": "misc", "SK": "keratosis"}
CLASS_WEIGHTS = np.array([42, 575, 252, 97, 45], float) / 1011 + 0.08  # release shares, floored
LOCATIONS = ("back", "lower limbs", "upper limbs", "abdomen", "chest", "head neck", "acral", "buttocks", "genital areas")
COLUMNS = (
    "case_num", "diagnosis", "seven_point_score", "pigment_network", "streaks", "pigmentation",
    "regression_structures", "dots_and_globules", "blue_whitish_veil", "vascular_structures",
    "level_of_diagnostic_difficulty", "elevation", "location", "sex", "management", "clinic", "derm",
    "case_id", "notes",
)
DEFAULT_SIZE = (256, 192)


def synthesize_derm7pt(out_dir, n: int = 100, seed: int = 0, image_size=None, force: bool = False) -> SynthResult:
    """Write `n` generated derm7pt-style cases (a clinical and a dermoscopic image each)."""
    check_n(n, 3, "derm7pt")
    width, height = parse_image_size(image_size) or DEFAULT_SIZE
    out = prepare_out_dir(out_dir, force)
    rng = np.random.default_rng(seed)
    (out / "meta").mkdir(exist_ok=True)
    diagnoses = {group: sorted(d for d, g in DIAGNOSIS_GROUPS.items() if g == group) for group in CLASS_NAMES}
    rows = []
    counts = {c: 0 for c in CLASS_NAMES}
    for case, group in enumerate(class_sequence(rng, n, CLASS_NAMES, CLASS_WEIGHTS, minimum_each=1)):
        folder = f"G{case // 100:03d}"
        (out / "images" / folder).mkdir(parents=True, exist_ok=True)
        lesion = make_lesion(rng, STYLE_OF_CLASS[group])
        clinic = f"{folder}/Gcl{case:04d}.jpg"
        derm = f"{folder}/Gdm{case:04d}.jpg"
        write_image(out / "images" / clinic, render(lesion, rng, width, height, clinical=True, hair_probability=0.0)[0])
        write_image(out / "images" / derm, render(lesion, rng, width, height)[0])
        malignant = group in ("MEL", "BCC")
        criteria = {
            "pigment_network": rng.choice(["absent", "typical", "atypical"], p=[0.3, 0.2, 0.5] if malignant else [0.3, 0.6, 0.1]),
            "streaks": rng.choice(["absent", "regular", "irregular"], p=[0.6, 0.1, 0.3] if malignant else [0.85, 0.1, 0.05]),
            "pigmentation": rng.choice(["absent", "diffuse regular", "diffuse irregular"]),
            "regression_structures": rng.choice(["absent", "blue areas", "white areas", "combinations"]),
            "dots_and_globules": rng.choice(["absent", "regular", "irregular"]),
            "blue_whitish_veil": rng.choice(["absent", "present"], p=[0.5, 0.5] if malignant else [0.9, 0.1]),
            "vascular_structures": rng.choice(["absent", "arborizing", "dotted", "within regression"]),
        }
        score = 2 * (criteria["pigment_network"] == "atypical") + 2 * (criteria["blue_whitish_veil"] == "present") + (
            criteria["streaks"] == "irregular")
        rows.append({
            "case_num": str(case + 1),
            "diagnosis": str(rng.choice(diagnoses[group])),
            "seven_point_score": str(int(score)),
            **{k: str(v) for k, v in criteria.items()},
            "level_of_diagnostic_difficulty": str(rng.choice(["low", "medium", "high"])),
            "elevation": str(rng.choice(["flat", "palpable", "nodular"])),
            "location": str(rng.choice(LOCATIONS)),
            "sex": draw_sex(rng, unknown=0.0),
            "management": "excision" if malignant else str(rng.choice(["clinical follow up", "no further examination", "excision"])),
            "clinic": clinic,
            "derm": derm,
            "case_id": f"G{case:04d}",
            "notes": "generated, not medical data",
        })
        counts[group] += 1
    with open(out / "meta" / "meta.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    order = rng.permutation(n)
    n_train, n_val = int(round(n * 0.4)), int(round(n * 0.2))  # the release: 413 / 203 / 395
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    for split, filename in SPLIT_FILES.items():
        with open(out / "meta" / filename, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([("indexes",), *((int(i),) for i in sorted(parts[split]))])
    write_notice(out, "derm7pt", n, seed, f"image size: {width}x{height}")
    files = ["meta/meta.csv"] + [f"meta/{f}" for f in SPLIT_FILES.values()] + ["images/", "README_SYNTHETIC.txt"]
    return SynthResult("derm7pt", out, n, files, counts, notes=f"{n} cases x (clinical + dermoscopic) {width}x{height}")
