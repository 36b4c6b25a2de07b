"""ISIC 2017 challenge, Part 3 (Codella et al., ISBI 2018): melanoma / seborrheic keratosis / nevus.

On disk, as released (Split is Training, Validation or Test_v2; the un-suffixed Test is read too):

    ISIC-2017_<Split>_Data/<image_id>.jpg
    ISIC-2017_<Split>_Part3_GroundTruth.csv     image_id,melanoma,seborrheic_keratosis (0.0 / 1.0)
    ISIC-2017_<Split>_Data_metadata.csv         optional: image_id,age_approximate,sex ("unknown" allowed)
    ISIC-2017_<Split>_Part1_GroundTruth/<image_id>_segmentation.png   optional lesion masks

The official test set was released as `ISIC-2017_Test_v2_Data` with
`ISIC-2017_Test_v2_Part3_GroundTruth.csv` and no metadata file (a missing metadata file only means
unknown ages and sexes).

Both flags 0 means nevus. The `split` column holds train / val / test. The release has no lesion
ids, so each image is its own group. The challenge scores two binary tasks (melanoma vs rest,
seborrheic keratosis vs rest); the 3-class labels here cover both.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import pandas as pd

from skinkeras.data.images import IMAGE_SUFFIXES
from skinkeras.data.loading import build_table, lookup, read_csv, require_root
from skinkeras.data.registry import register_dataset
from skinkeras.data.table import SampleTable
from skinkeras.errors import DataError

CLASS_NAMES = ("melanoma", "seborrheic_keratosis", "nevus")
# Our split name -> the release's folder word (what generated data is written as).
SPLITS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
# Every folder word a release may use for a split, the official one first.
RELEASE_NAMES = {"train": ("Training",), "val": ("Validation",), "test": ("Test_v2", "Test")}
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}


def ground_truth_csv(split: str, word: str | None = None) -> str:
    return f"ISIC-2017_{word or SPLITS[split]}_Part3_GroundTruth.csv"


def data_folder(split: str, word: str | None = None) -> str:
    return f"ISIC-2017_{word or SPLITS[split]}_Data"


def metadata_csv(split: str, word: str | None = None) -> str:
    return f"ISIC-2017_{word or SPLITS[split]}_Data_metadata.csv"


def mask_folder(split: str, word: str | None = None) -> str:
    return f"ISIC-2017_{word or SPLITS[split]}_Part1_GroundTruth"


def release_word(root, split: str) -> str | None:
    """The folder word of `split` in the release at `root` (Test_v2 or Test for the test set), or
    None when that split's ground truth is not there."""
    for word in RELEASE_NAMES[split]:
        if (root / ground_truth_csv(split, word)).is_file():
            return word
    return None


def _normalise_splits(splits: Iterable[str] | str | None) -> list[str] | None:
    if splits is None:
        return None
    if isinstance(splits, str):
        splits = [s for s in splits.split(",") if s.strip()]
    names = []
    for split in splits:
        key = _SPLIT_ALIASES.get(str(split).strip().lower())
        if key is None:
            raise DataError(f"unknown ISIC 2017 split {split!r}; valid: train, val, test")
        if key not in names:
            names.append(key)
    return names


def _files_in(folder) -> dict[str, str]:
    """stem -> absolute path for the image files directly in `folder` (the release does not nest)."""
    found = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                stem, suffix = os.path.splitext(entry.name)
                if suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith(".") and entry.is_file():
                    found.setdefault(stem, os.path.abspath(entry.path))
    except FileNotFoundError:
        pass
    return found


def _labels(frame: pd.DataFrame) -> pd.Series:
    melanoma = pd.to_numeric(frame["melanoma"], errors="coerce").to_numpy()
    keratosis = pd.to_numeric(frame["seborrheic_keratosis"], errors="coerce").to_numpy()
    labels = np.full(len(frame), "nevus", dtype=object)
    labels[melanoma == 1] = "melanoma"
    labels[keratosis == 1] = "seborrheic_keratosis"
    both = (melanoma == 1) & (keratosis == 1)
    labels[both] = "melanoma+seborrheic_keratosis"
    invalid = ~np.isin(melanoma, (0, 1)) | ~np.isin(keratosis, (0, 1))
    labels[invalid] = [
        f"melanoma={m!r},seborrheic_keratosis={k!r}"
        for m, k in zip(frame["melanoma"][invalid], frame["seborrheic_keratosis"][invalid])
    ]
    return pd.Series(labels, index=frame.index)


@register_dataset("isic2017")
def load_isic2017(root, splits: Iterable[str] | str | None = None) -> SampleTable:
    """ISIC 2017 Part 3: melanoma, seborrheic keratosis, nevus; splits train/val/test as released."""
    root = require_root(root)
    wanted = _normalise_splits(splits)
    candidates = wanted if wanted is not None else list(SPLITS)
    words = {s: release_word(root, s) for s in candidates}
    present = [s for s in candidates if words[s] is not None]
    if wanted is not None and len(present) < len(wanted):
        missing = [s for s in wanted if s not in present]
        raise DataError(f"expected {root / ground_truth_csv(missing[0])}: file not found (split {missing[0]!r})")
    if not present:
        raise DataError(f"expected {root / ground_truth_csv('train')}: file not found (no ISIC 2017 Part 3 ground truth in {root})")

    frames = []
    for split in present:
        word = words[split]
        truth = read_csv(root / ground_truth_csv(split, word), required=("image_id", "melanoma", "seborrheic_keratosis"))
        images_dir = root / data_folder(split, word)
        if not images_dir.is_dir():
            raise DataError(f"expected image folder {images_dir}: not found")
        images = _files_in(images_dir)
        masks = _files_in(root / mask_folder(split, word))
        meta_path = root / metadata_csv(split, word)
        if meta_path.is_file():
            meta = read_csv(meta_path, required=("image_id",)).drop_duplicates("image_id").set_index("image_id")
        else:
            meta = pd.DataFrame(columns=["age_approximate", "sex"])
        ids = truth["image_id"]
        frames.append(
            pd.DataFrame(
                {
                    "image_id": ids,
                    "image_path": lookup(ids, images),
                    "expected_image": ids.map(lambda i: str(images_dir / f"{i}.jpg")),
                    "label": _labels(truth),
                    "lesion_id": ids,
                    "age": lookup(ids, meta["age_approximate"].to_dict()) if "age_approximate" in meta else "",
                    "sex": lookup(ids, meta["sex"].to_dict()) if "sex" in meta else "",
                    "site": "",
                    "mask_path": lookup(ids + "_segmentation", masks),
                    "split": split,
                }
            )
        )
    raw = pd.concat(frames, ignore_index=True)
    source = ", ".join(ground_truth_csv(s, words[s]) for s in present)
    return build_table("isic2017", root, raw, CLASS_NAMES, source=source)
