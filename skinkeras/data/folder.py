"""A user's own data: one CSV listing images and labels, images anywhere below the same folder.

Layout:

    <root>/labels.csv     columns: image, label; optional: lesion_id, age, sex, site, split, mask,
                          clinical, elevation
    <root>/...            the images

`image` is either a path relative to the root (`imgs/a.jpg`) or an image id: the file name without
extension, looked up anywhere below the root (like HAM10000). `mask` is likewise optional, relative
to the root. A path that leads out of the root (`../x.jpg`, `/abs/x.jpg`, a symlink out) is a
MISSING_FILE problem unless `allow_outside_root=True` (`--option allow_outside_root=true`, or
`--set data.allow_outside_root=true` for training): a CSV should not make training read any file
its writer chose.

`clinical` (optional) names a second, clinical photograph of the case, given like `image` (a path
relative to the root or an image id; the same outside-root rule). When the CSV has that column the
table gets `clinical_path` (absolute, "" when the cell is empty or the file is missing: the case is
kept dermoscopy-only and a MISSING_CLINICAL problem says what was looked for); without it the table
has no `clinical_path` column. Likewise `elevation` (flat / palpable / nodular; lower case, "unknown"
when empty) becomes an `elevation` column only when the CSV has one.

Without `lesion_id` every image is its own group; without `site`/`sex`/`age` they are
unknown (reported once, as MISSING_COLUMN). Classes are the sorted distinct labels unless `class_names` is given (then rows with other
labels are reported as UNKNOWN_LABEL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from skinkeras.data.loading import (
    build_table,
    index_files,
    missing_clinical,
    normalise_category,
    optional_column,
    read_csv,
    require_file,
    require_root,
)
from skinkeras.data.registry import register_dataset
from skinkeras.data.table import SampleTable
from skinkeras.errors import DataError

DEFAULT_CSV = "labels.csv"


@register_dataset("folder")
def load_folder(root, csv: str = DEFAULT_CSV, class_names: Sequence[str] | str | None = None,
                allow_outside_root: bool | str = False) -> SampleTable:
    """Your own data: a CSV (image, label[, lesion_id, age, sex, site, split, mask, clinical, ...]) + images."""
    root = require_root(root)
    allow_outside_root = _flag(allow_outside_root, "allow_outside_root")
    csv_path = Path(csv) if Path(csv).is_absolute() else root / csv
    require_file(csv_path, "the label CSV (columns image,label)")
    frame = read_csv(csv_path, required=("image", "label"))
    if isinstance(class_names, str):
        class_names = [c.strip() for c in class_names.split(",") if c.strip()]
    if class_names is None:
        class_names = sorted(set(frame["label"]) - {""})
    if not class_names:
        raise DataError(f"no labels in {csv_path}")
    if len(set(class_names)) != len(class_names):
        raise DataError(f"class names repeat: {list(class_names)}")

    files = None  # indexed only when some row names an id rather than a path

    def resolve(value: str, column: str = "image") -> tuple[str, str, str]:
        """(image_id, absolute path or "", what was looked for)"""
        nonlocal files
        if not value:
            return "", "", f"(empty {column!r} cell)"
        candidate = root / value
        if Path(value).suffix and not inside(candidate):
            return Path(value).stem, "", f"{candidate}: outside the data root {root} (allow with allow_outside_root)"
        if Path(value).suffix and candidate.is_file():
            return Path(value).stem, str(candidate.resolve()), str(candidate)
        if Path(value).suffix:
            return Path(value).stem, "", str(candidate)
        if files is None:
            files = index_files(root)
        return value, files.get(value, ""), f"{value}.* below {root}"

    def inside(candidate: Path) -> bool:
        return allow_outside_root or candidate.resolve().is_relative_to(root)

    resolved = [resolve(v) for v in frame["image"]]
    image_ids = [r[0] or f"row{i + 2}" for i, r in enumerate(resolved)]

    def resolve_mask(value: str) -> str:
        if not value:
            return ""
        candidate = root / value
        return str(candidate.resolve()) if inside(candidate) and candidate.is_file() else ""

    def column(name):
        return frame[name] if name in frame.columns else pd.Series("", index=frame.index)

    problems = []
    raw = pd.DataFrame(
        {
            "image_id": image_ids,
            "image_path": [r[1] for r in resolved],
            "expected_image": [r[2] for r in resolved],
            "label": frame["label"],
            "lesion_id": column("lesion_id"),
            "age": optional_column(frame, "age", csv_path, problems),
            "sex": optional_column(frame, "sex", csv_path, problems),
            "site": optional_column(frame, "site", csv_path, problems),
            "mask_path": column("mask").map(resolve_mask),
            "split": column("split").str.lower(),
        }
    )
    extra = []
    if "clinical" in frame.columns:
        clinical = [resolve(v, "clinical") for v in frame["clinical"]]
        raw["clinical_path"] = [r[1] for r in clinical]
        problems += missing_clinical(raw["image_id"], raw["image_path"], raw["clinical_path"], [r[2] for r in clinical])
        extra.append("clinical_path")
    if "elevation" in frame.columns:
        raw["elevation"] = normalise_category(frame["elevation"])
        extra.append("elevation")
    return build_table("folder", root, raw, class_names, source=str(csv_path), extra_columns=extra,
                       problems=problems, files=files)


def _flag(value, name: str) -> bool:
    """A boolean loader option, given as a bool or as text (`--option name=true`)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise DataError(f"{name} must be true or false. Received: {value!r}")
