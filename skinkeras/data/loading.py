"""Helpers shared by the dataset loaders: checking the root, reading CSVs, indexing files once,
normalising metadata and turning raw rows into a `SampleTable` with every problem recorded.

Every loader builds a "raw" frame (one row per CSV row, strings as read, `image_path` "" when the
file was not found) and hands it to `build_table`, so the rules for duplicates, unknown labels,
missing files, ages and sexes are the same for every dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from skinkeras.data.images import IMAGE_SUFFIXES
from skinkeras.data.table import (
    ALL_IMAGES,
    AMBIGUOUS_FILE,
    BAD_AGE,
    COLUMNS,
    DUPLICATE_ID,
    MISSING_CLINICAL,
    MISSING_COLUMN,
    MISSING_FILE,
    UNKNOWN_LABEL,
    UNKNOWN_VALUE,
    Problem,
    SampleTable,
)
from skinkeras.errors import DataError

MAX_AGE = 120.0

_SEX_NAMES = {
    "female": "female",
    "f": "female",
    "woman": "female",
    "male": "male",
    "m": "male",
    "man": "male",
}


def require_root(root) -> Path:
    """The dataset folder as an absolute Path; DataError naming it if it is missing or empty."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"dataset folder not found: {path}")
    if not path.is_dir():
        raise DataError(f"dataset root is not a folder: {path}")
    with os.scandir(path) as entries:
        if next(entries, None) is None:
            raise DataError(f"dataset folder is empty: {path}")
    return path.resolve()


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"expected {what} at {path}: file not found")
    return path


def read_csv(path: Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV with every column as text ("" for empty cells); DataError on parse problems."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read CSV {path}: {str(error).splitlines()[0]}") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]  # Excel writes a BOM
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"CSV {path} lacks column(s) {missing}; found {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"CSV {path} has no rows")
    for column in frame.columns:
        frame[column] = frame[column].astype(str).str.strip()
    return frame


class FileIndex(dict):
    """file stem -> absolute path, and `clashes`: stem -> every path found when there are several
    (a stray `ISIC_x.png` at the root beside `part_1/ISIC_x.jpg`)."""

    def __init__(self):
        super().__init__()
        self.clashes: dict[str, list[str]] = {}


def index_files(root: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> FileIndex:
    """Map file stem -> absolute path for every file below `root` with one of `suffixes`.

    One recursive `os.scandir` walk (a glob per image would touch the directory 10,000 times).
    Entries are visited in sorted order so that the mapping is deterministic; stems found more than
    once are listed in `clashes` (`build_table(files=...)` excludes them as AMBIGUOUS_FILE).
    Hidden folders are skipped.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    found = FileIndex()
    stack = [str(root)]
    visited: set[str] = set()  # real paths: a symlink loop must not make the walk endless
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in visited:
            continue
        visited.add(real)
        try:
            with os.scandir(folder) as entries:
                items = sorted(entries, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in items:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                subfolders.append(entry.path)
                continue
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in suffixes:
                if stem in found:
                    found.clashes.setdefault(stem, [found[stem]]).append(os.path.abspath(entry.path))
                else:
                    found[stem] = os.path.abspath(entry.path)
        # Reverse so that the stack pops sub-folders in sorted order (depth first).
        stack.extend(reversed(subfolders))
    return found


def lookup(keys: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """mapping[key] for each key, "" when absent (as text even when nothing matches)."""
    return pd.Series([mapping.get(k, "") for k in keys], index=keys.index, dtype=object)


def optional_column(frame: pd.DataFrame, name: str, csv_path, problems: list[Problem]) -> pd.Series:
    """The CSV's `name` column, or blanks and one MISSING_COLUMN problem when it has none."""
    if name in frame.columns:
        return frame[name]
    problems.append(Problem(ALL_IMAGES, MISSING_COLUMN,
                            f"{Path(csv_path).name} has no {name!r} column: every image's {name} is unknown"))
    return pd.Series("", index=frame.index)


def _unknown_values(ids: pd.Series, values: pd.Series, known, what: str, ignore: np.ndarray) -> list[Problem]:
    """UNKNOWN_VALUE problems for values that are given (not blank / "unknown") but not in `known`."""
    text = values.fillna("").astype(str).str.strip()
    lowered = text.str.lower().str.replace(r"\s+", " ", regex=True)
    given = ~lowered.isin(["", "unknown", "nan", "na", "n/a", "none", "?"])
    odd = (given & ~lowered.isin(list(known))).to_numpy() & ~ignore
    return [Problem(str(ids.iloc[i]), UNKNOWN_VALUE, f"{what} {text.iloc[i]!r} is not one of {sorted(set(known))}; "
                    "encoded as unknown") for i in np.flatnonzero(odd)]


def normalise_sex(values: pd.Series) -> pd.Series:
    """female / male / unknown, whatever the spelling or case."""
    lowered = values.fillna("").astype(str).str.strip().str.lower()
    return lowered.map(lambda v: _SEX_NAMES.get(v, "unknown")).astype(str)


def normalise_category(values: pd.Series) -> pd.Series:
    """Lower case, single spaces; missing -> "unknown" (sites, elevations: one spelling per value)."""
    cleaned = values.fillna("").astype(str).str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
    return cleaned.where(cleaned != "", "unknown").astype(str)


def normalise_site(values: pd.Series) -> pd.Series:
    """Lower case, single spaces; missing -> "unknown"."""
    return normalise_category(values)


def missing_clinical(ids: Sequence[str], image_paths: Sequence[str], clinical_paths: Sequence[str],
                     expected: Sequence[str]) -> list[Problem]:
    """MISSING_CLINICAL for each case whose clinical image was not found (`expected`: what was looked
    for). Only cases that stay in the table get one: a case already excluded (no dermoscopic image,
    a repeated id) would only get noise."""
    problems, seen = [], set()
    for image_id, image, clinical, looked_for in zip(ids, image_paths, clinical_paths, expected):
        repeated = image_id in seen
        seen.add(image_id)
        if image and not clinical and not repeated:
            problems.append(Problem(str(image_id), MISSING_CLINICAL,
                                    f"no clinical image ({looked_for}); kept dermoscopy-only"))
    return problems


def parse_ages(
    image_ids: pd.Series, values: pd.Series, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, list[Problem]]:
    """Ages as float years: empty / "unknown" -> NaN silently; negative, > 120 or not a number ->
    NaN and a BAD_AGE problem (the row is kept). Rows where `ignore` is true get no problem."""
    text = values.fillna("").astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    blank = text.str.lower().isin(["", "unknown", "nan", "na", "n/a", "none", "?"]).to_numpy()
    bad_text = np.isnan(numbers) & ~blank
    with np.errstate(invalid="ignore"):
        out_of_range = (numbers < 0) | (numbers > MAX_AGE)
    problems = []
    flagged = bad_text | out_of_range
    if ignore is not None:
        flagged = flagged & ~ignore
    for position in np.flatnonzero(flagged):
        problems.append(
            Problem(
                str(image_ids.iloc[position]),
                BAD_AGE,
                f"age {text.iloc[position]!r} is not a number of years in 0..{MAX_AGE:g}; set to unknown",
            )
        )
    ages = numbers.copy()
    ages[bad_text | out_of_range | blank] = np.nan
    return ages, problems


def build_table(
    name: str,
    root: Path,
    raw: pd.DataFrame,
    class_names: Sequence[str],
    *,
    source: str,
    extra_columns: Sequence[str] = (),
    problems: Sequence[Problem] = (),
    files: FileIndex | None = None,
    sites: Sequence[str] | None = None,
) -> SampleTable:
    """Apply the shared rules to raw rows and return the SampleTable.

    `raw` has the columns image_id, image_path ("" when not found), label, lesion_id, age (text),
    sex (text), site (text), mask_path, split, `expected_image` (what was looked for, for messages)
    plus `extra_columns`. `source` names the CSV for duplicate messages. `files`: the index the
    image paths were looked up in (ids with two files are excluded); `sites`: the release's site
    vocabulary (other values are reported; sex values always are).
    """
    class_names = tuple(class_names)
    found: list[Problem] = list(problems)
    raw = raw.reset_index(drop=True)
    ids = raw["image_id"].astype(str)

    duplicated = ids.duplicated(keep="first").to_numpy()
    if duplicated.any():
        counts = ids.value_counts()
        for image_id in ids[duplicated]:
            found.append(
                Problem(image_id, DUPLICATE_ID, f"image id listed {counts[image_id]} times in {source}; kept the first")
            )

    labels = raw["label"].astype(str)
    unknown = ~labels.isin(class_names).to_numpy()
    for position in np.flatnonzero(unknown & ~duplicated):
        found.append(
            Problem(
                ids.iloc[position],
                UNKNOWN_LABEL,
                f"label {labels.iloc[position]!r} is not one of {list(class_names)}",
            )
        )

    missing = (raw["image_path"].astype(str) == "").to_numpy()
    for position in np.flatnonzero(missing & ~duplicated):
        found.append(Problem(ids.iloc[position], MISSING_FILE, f"image file not found: {raw['expected_image'].iloc[position]}"))

    ambiguous = np.zeros(len(raw), bool)
    if files is not None and files.clashes:
        ambiguous = ids.isin(files.clashes.keys()).to_numpy() & ~duplicated
        for position in np.flatnonzero(ambiguous):
            paths = files.clashes[ids.iloc[position]]
            found.append(Problem(ids.iloc[position], AMBIGUOUS_FILE,
                                 f"{len(paths)} files for one image id: {', '.join(paths)}; keep one"))

    ages, age_problems = parse_ages(ids, raw["age"], ignore=duplicated)
    found.extend(age_problems)
    found.extend(_unknown_values(ids, raw["sex"], _SEX_NAMES, "sex", duplicated))
    if sites is not None:
        found.extend(_unknown_values(ids, raw["site"], sites, "site", duplicated))

    keep = ~(duplicated | unknown | missing | ambiguous)
    samples = pd.DataFrame(
        {
            "image_id": ids.to_numpy(dtype=object),
            "image_path": raw["image_path"].astype(str).to_numpy(dtype=object),
            "label": labels.to_numpy(dtype=object),
            "label_index": labels.map({c: i for i, c in enumerate(class_names)}).fillna(-1).astype(int).to_numpy(),
            "lesion_id": _lesion_ids(raw["lesion_id"], ids).to_numpy(dtype=object),
            "age": ages,
            "sex": normalise_sex(raw["sex"]).to_numpy(dtype=object),
            "site": normalise_site(raw["site"]).to_numpy(dtype=object),
            "mask_path": raw["mask_path"].astype(str).to_numpy(dtype=object),
            "split": raw["split"].astype(str).to_numpy(dtype=object),
        }
    )
    for column in extra_columns:
        samples[column] = raw[column].to_numpy()
    samples = samples.loc[keep].reset_index(drop=True)
    for column in ("image_id", "image_path", "label", "lesion_id", "sex", "site", "mask_path", "split"):
        samples[column] = samples[column].astype(str)
    samples["label_index"] = samples["label_index"].astype(np.int64)
    samples["age"] = samples["age"].astype(np.float64)
    return SampleTable(name=name, root=Path(root), samples=samples[list(COLUMNS) + list(extra_columns)],
                       class_names=class_names, problems=found)


def _lesion_ids(values: pd.Series, image_ids: pd.Series) -> pd.Series:
    text = values.fillna("").astype(str).str.strip()
    return text.where(text != "", image_ids)
