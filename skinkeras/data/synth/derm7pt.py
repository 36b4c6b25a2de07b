"""Generated data in the derm7pt layout (NOT medical data): clinical + dermoscopic pairs.

Writes `meta/meta.csv` with the release's columns, `images/<folder>/<name>.jpg` (one clinical and one
dermoscopic view per case), the official-split files `meta/{train,valid,test}_indexes.csv` (column
`indexes`, 0-based row positions), `synthetic_evidence.csv` (below) and the notice. Diagnoses come
from the release's vocabulary, so the loader's 5-group mapping is exercised.

Evidence model, so that fusing the views and the metadata can be shown to help:

- Each view (dermoscopic, clinical) is drawn separately: its share `w` of the true class ~
  Uniform(`evidence_low`, 1) and a distractor class (another class, drawn per view); the view's
  lesion style is `blend_styles(true, distractor, w)`. A view alone is sometimes misleading, and the
  two views' mistakes are independent. The draws are written to `synthetic_evidence.csv` (never to
  meta.csv, where a model could read them).
- The clinical view differs from the dermoscopic one in scale (a small lesion in a wide field),
  lighting (coloured cast, steep gradient), background (a patch of clothing or wall at a side, other
  skin tone) and blur (variable), as a phone or camera photograph does.
- Metadata carries weak evidence: `elevation` and `location` depend on the class (BCC and MEL more
  often palpable or nodular, BCC more often on the head and neck, SK on the back and chest, NEV mostly
  flat); sex does not. The seven-point criteria and `management` depend on malignancy (the loader
  does not read them).
- `missing_clinical`: that share of cases (chosen at random) get an empty `clinic` cell and no
  clinical file; the other cases' images are the same bytes as without it.
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
from skinkeras.data.synth.drawing import STYLES, blend_styles, lesion_of_style, render, write_image
from skinkeras.errors import DataError

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
EVIDENCE_FILE = "synthetic_evidence.csv"
ELEVATIONS = ("flat", "palpable", "nodular")
# Weak evidence: P(elevation | class) and P(location | class), in the order of ELEVATIONS / LOCATIONS.
ELEVATION_OF_CLASS = {
    "BCC": (0.20, 0.35, 0.45),
    "NEV": (0.65, 0.28, 0.07),
    "MEL": (0.35, 0.35, 0.30),
    "MISC": (0.50, 0.40, 0.10),
    "SK": (0.25, 0.60, 0.15),
}
LOCATION_OF_CLASS = {
    "BCC": (14, 8, 6, 6, 10, 44, 4, 4, 4),
    "NEV": (30, 20, 14, 14, 8, 4, 6, 2, 2),
    "MEL": (34, 30, 10, 6, 6, 8, 4, 1, 1),
    "MISC": (16, 34, 22, 8, 6, 6, 4, 2, 2),
    "SK": (34, 6, 6, 12, 28, 10, 1, 2, 1),
}


def synthesize_derm7pt(out_dir, n: int = 100, seed: int = 0, image_size=None, force: bool = False,
                       evidence_low: float = 0.3, missing_clinical: float = 0.0) -> SynthResult:
    """Write `n` generated derm7pt-style cases (a clinical and a dermoscopic image each).

    `evidence_low`: the lowest share of the true class in a view's look (see the module docstring);
    `missing_clinical`: the share of cases without a clinical image.
    """
    check_n(n, 3, "derm7pt")
    evidence_low = _share(evidence_low, "evidence_low")
    missing_clinical = _share(missing_clinical, "missing_clinical")
    width, height = parse_image_size(image_size) or DEFAULT_SIZE
    out = prepare_out_dir(out_dir, force)
    rng = np.random.default_rng(seed)
    # Its own stream: the cases that keep their clinical image look the same whatever the share.
    no_clinic = set(np.random.default_rng([seed, 1]).choice(n, int(round(missing_clinical * n)), replace=False).tolist())
    (out / "meta").mkdir(exist_ok=True)
    diagnoses = {group: sorted(d for d, g in DIAGNOSIS_GROUPS.items() if g == group) for group in CLASS_NAMES}
    rows, evidence = [], []
    counts = {c: 0 for c in CLASS_NAMES}
    for case, group in enumerate(class_sequence(rng, n, CLASS_NAMES, CLASS_WEIGHTS, minimum_each=1)):
        folder = f"G{case // 100:03d}"
        (out / "images" / folder).mkdir(parents=True, exist_ok=True)
        derm_lesion, derm_weight, derm_other = _view(rng, group, evidence_low)
        clinic_lesion, clinic_weight, clinic_other = _view(rng, group, evidence_low)
        clinic = "" if case in no_clinic else f"{folder}/Gcl{case:04d}.jpg"
        derm = f"{folder}/Gdm{case:04d}.jpg"
        clinic_image = render(clinic_lesion, rng, width, height, clinical=True, hair_probability=0.0)[0]
        if clinic:  # drawn either way, so that the random stream does not depend on the share missing
            write_image(out / "images" / clinic, clinic_image)
        write_image(out / "images" / derm, render(derm_lesion, rng, width, height)[0])
        rows.append({"case_num": str(case + 1), "diagnosis": str(rng.choice(diagnoses[group])),
                     **_case_metadata(rng, group), "clinic": clinic, "derm": derm, "case_id": f"G{case:04d}",
                     "notes": "generated, not medical data"})
        evidence.append((case + 1, group, f"{derm_weight:.4f}", derm_other,
                         f"{clinic_weight:.4f}" if clinic else "", clinic_other if clinic else ""))
        counts[group] += 1
    _write_csv(out / "meta" / "meta.csv", COLUMNS, [[row[c] for c in COLUMNS] for row in rows])
    _write_csv(out / EVIDENCE_FILE, ("case_num", "class", "derm_weight", "derm_distractor", "clinic_weight",
                                     "clinic_distractor"), evidence)
    order = rng.permutation(n)
    n_train, n_val = int(round(n * 0.4)), int(round(n * 0.2))  # the release: 413 / 203 / 395
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    for split, filename in SPLIT_FILES.items():
        _write_csv(out / "meta" / filename, ("indexes",), [(int(i),) for i in sorted(parts[split])])
    write_notice(out, "derm7pt", n, seed, f"image size: {width}x{height}\nevidence_low: {evidence_low:g}\n"
                 f"missing_clinical: {missing_clinical:g} ({len(no_clinic)} cases without a clinical image)")
    files = (["meta/meta.csv"] + [f"meta/{f}" for f in SPLIT_FILES.values()]
             + ["images/", EVIDENCE_FILE, "README_SYNTHETIC.txt"])
    notes = f"{n} cases x (clinical + dermoscopic) {width}x{height}"
    if no_clinic:
        notes += f"; {len(no_clinic)} without a clinical image"
    return SynthResult("derm7pt", out, n, files, counts, notes=notes)


def _share(value, name: str) -> float:
    """A fraction option in 0..1, as a float (one-line DataError otherwise)."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number in 0..1. Received: {value!r}") from None
    if not 0.0 <= share <= 1.0:
        raise DataError(f"{name} must be in 0..1. Received: {value!r}")
    return share


def _view(rng: np.random.Generator, group: str, evidence_low: float):
    """(lesion, weight of the true class, distractor class) of one view of a case."""
    weight = float(rng.uniform(evidence_low, 1.0))
    distractor = str(rng.choice([c for c in CLASS_NAMES if c != group]))
    style = blend_styles(STYLES[STYLE_OF_CLASS[group]], STYLES[STYLE_OF_CLASS[distractor]], weight, rng)
    return lesion_of_style(rng, style), weight, distractor


def _case_metadata(rng: np.random.Generator, group: str) -> dict[str, str]:
    """meta.csv's clinical columns of one case: criteria and management follow malignancy, elevation
    and location weakly follow the class, sex does not."""
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
    locations = np.array(LOCATION_OF_CLASS[group], float)
    return {
        "seven_point_score": str(int(score)),
        **{k: str(v) for k, v in criteria.items()},
        "level_of_diagnostic_difficulty": str(rng.choice(["low", "medium", "high"])),
        "elevation": str(rng.choice(ELEVATIONS, p=ELEVATION_OF_CLASS[group])),
        "location": str(rng.choice(LOCATIONS, p=locations / locations.sum())),
        "sex": draw_sex(rng, unknown=0.0),
        "management": "excision" if malignant else str(rng.choice(["clinical follow up", "no further examination",
                                                                    "excision"])),
    }


def _write_csv(path, header, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
