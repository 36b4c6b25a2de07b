"""derm7pt, the seven-point checklist dataset (Kawahara et al., IEEE JBHI 2019): paired clinical and
dermoscopic images of 1,011 cases, used for multimodal fusion (paper 004's shape of data).

On disk, as released:

    meta/meta.csv                case_num, diagnosis, seven_point_score, pigment_network, streaks,
                                 pigmentation, regression_structures, dots_and_globules,
                                 blue_whitish_veil, vascular_structures,
                                 level_of_diagnostic_difficulty, elevation, location, sex,
                                 management, clinic, derm, case_id, notes
    images/<clinic>, images/<derm>   image paths relative to images/
    meta/{train,valid,test}_indexes.csv   row positions (0-based, column "indexes") of the official split

`image_path` is the dermoscopic image (`derm`; a case without one is excluded, MISSING_FILE),
`clinical_path` the clinical one (`clinic`; "" when the cell is empty or the file is missing: the
case is kept dermoscopy-only and a MISSING_CLINICAL problem names what was looked for). The group is
`case_num`, which is also the image id (one dermoscopic image per case). There is no age column.
`elevation` is meta.csv's (flat / palpable / nodular), lower case, "unknown" when empty. Sites are
the release's `location` values (`DERM7PT_SITES`); others are reported (UNKNOWN_VALUE) and encoded
as unknown.

Classes: the 5-class diagnosis grouping ("DIAG") of Kawahara et al.'s released code: BCC, NEV, MEL,
MISC, SK. The original diagnosis string is kept in the `diagnosis` column.
"""

from __future__ import annotations

import pandas as pd

from skinkeras.data.loading import (
    build_table,
    missing_clinical,
    normalise_category,
    read_csv,
    require_file,
    require_root,
)
from skinkeras.data.registry import register_dataset
from skinkeras.data.table import SampleTable

CLASS_NAMES = ("BCC", "NEV", "MEL", "MISC", "SK")

# Diagnosis strings of meta.csv -> 5-class group (Kawahara et al.).
DIAGNOSIS_GROUPS = {
    "basal cell carcinoma": "BCC",
    "blue nevus": "NEV",
    "clark nevus": "NEV",
    "combined nevus": "NEV",
    "congenital nevus": "NEV",
    "dermal nevus": "NEV",
    "recurrent nevus": "NEV",
    "reed or spitz nevus": "NEV",
    "melanoma": "MEL",
    "melanoma (in situ)": "MEL",
    "melanoma (less than 0.76 mm)": "MEL",
    "melanoma (0.76 to 1.5 mm)": "MEL",
    "melanoma (more than 1.5 mm)": "MEL",
    "melanoma metastasis": "MEL",
    "dermatofibroma": "MISC",
    "lentigo": "MISC",
    "melanosis": "MISC",
    "miscellaneous": "MISC",
    "vascular lesion": "MISC",
    "seborrheic keratosis": "SK",
}
# The release's `location` values (lower case, as normalised), and "unknown".
DERM7PT_SITES = (
    "abdomen", "acral", "back", "buttocks", "chest", "genital areas", "head neck", "lower limbs", "upper limbs",
    "unknown",
)
EXTRA_COLUMNS = ("clinical_path", "diagnosis", "elevation")
SPLIT_FILES = {"train": "train_indexes.csv", "val": "valid_indexes.csv", "test": "test_indexes.csv"}


def _official_split(root, n_rows: int) -> pd.Series:
    split = pd.Series("", index=range(n_rows), dtype=object)
    for name, filename in SPLIT_FILES.items():
        path = root / "meta" / filename
        if not path.is_file():
            continue
        frame = read_csv(path)
        column = "indexes" if "indexes" in frame.columns else frame.columns[0]
        positions = pd.to_numeric(frame[column], errors="coerce").dropna().astype(int)
        positions = positions[(positions >= 0) & (positions < n_rows)]
        split.iloc[positions.to_numpy()] = name
    return split


@register_dataset("derm7pt")
def load_derm7pt(root) -> SampleTable:
    """derm7pt: dermoscopic + clinical pairs, 5 diagnosis groups (BCC, NEV, MEL, MISC, SK)."""
    root = require_root(root)
    csv_path = require_file(root / "meta" / "meta.csv", "the derm7pt metadata CSV")
    frame = read_csv(csv_path, required=("case_num", "diagnosis", "derm"))
    images_dir = root / "images"

    def resolve(relative: str) -> str:
        if not relative:
            return ""
        path = images_dir / relative
        return str(path.resolve()) if path.is_file() else ""

    def blank():
        return pd.Series("", index=frame.index)

    derm = frame["derm"]
    clinic = frame.get("clinic", blank())
    diagnosis = frame["diagnosis"].str.strip().str.lower()
    raw = pd.DataFrame(
        {
            "image_id": frame["case_num"],
            "image_path": derm.map(resolve),
            "expected_image": derm.map(lambda r: str(images_dir / r) if r else "(no 'derm' path in meta.csv)"),
            "label": diagnosis.map(DIAGNOSIS_GROUPS).fillna(frame["diagnosis"]),
            "lesion_id": frame["case_num"],
            "age": "",
            "sex": frame.get("sex", blank()),
            "site": frame.get("location", blank()),
            "mask_path": "",
            "split": _official_split(root, len(frame)).to_numpy(),
            "clinical_path": clinic.map(resolve),
            "diagnosis": frame["diagnosis"],
            "elevation": normalise_category(frame.get("elevation", blank())),
        }
    )
    expected_clinical = clinic.map(lambda r: f"file not found: {images_dir / r}" if r else "empty 'clinic' cell in meta.csv")
    problems = missing_clinical(raw["image_id"], raw["image_path"], raw["clinical_path"], expected_clinical)
    return build_table("derm7pt", root, raw, CLASS_NAMES, source=str(csv_path), extra_columns=EXTRA_COLUMNS,
                       problems=problems, sites=DERM7PT_SITES)
