"""Splits grouped by lesion and stratified by class.

Several HAM10000 images show the same lesion; splitting by image puts copies of one lesion in both
train and test and inflates every score (a known defect of public skin-lesion code). Here every
split keeps a lesion's images together and keeps each class's share close to the whole.

How: lesions are the units. A lesion's class is its majority label (ties: the lowest label index).
Within each class, lesions are shuffled with the seed and then

* `train_val_test_split`: walked in that order, each lesion going to the split whose cumulative
  image quota its middle image falls in, so image fractions match within about one lesion;
* `kfold_splits`: dealt largest-first to the fold with the fewest images of that class so far,
  which balances both lesion and image counts per fold.

Both return positional index arrays into `table.samples` (sorted ascending), as `Split`s.
`with_split_column(table, split)` turns one `Split` into the table's `split` column
("train" / "val" / "test"), replacing the release's split if there was one.

Paper 000 uses 5-fold cross-validation with a nested validation fold: `kfold_splits(k=5,
nested_val=True)` gives, for fold i, test = fold i, val = fold (i + 1) mod k, train = the rest.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from skinkeras.data.table import SampleTable


@dataclasses.dataclass(frozen=True)
class Split:
    """Row positions (into `samples`) of each part; `val` is empty when there is none."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _frame(table_or_frame) -> pd.DataFrame:
    frame = table_or_frame.samples if isinstance(table_or_frame, SampleTable) else table_or_frame
    if "label" not in frame.columns:
        raise ValueError(f"splitting needs a 'label' column. Received columns: {list(frame.columns)}")
    return frame


def lesion_table(table_or_frame) -> pd.DataFrame:
    """One row per lesion: lesion_id, label (majority; ties to the first label in sorted order of
    label_index when present, else of the label), n_images; in first-appearance order."""
    frame = _frame(table_or_frame)
    groups = frame["lesion_id"] if "lesion_id" in frame.columns else frame["image_id"]
    order_key = frame["label_index"] if "label_index" in frame.columns else frame["label"]
    data = pd.DataFrame({"lesion_id": groups.astype(str).to_numpy(), "label": frame["label"].to_numpy(),
                         "key": order_key.to_numpy()})
    counts = data.groupby(["lesion_id", "label", "key"], sort=False).size().reset_index(name="count")
    counts = counts.sort_values(["lesion_id", "count", "key"], ascending=[True, False, True], kind="stable")
    majority = counts.drop_duplicates("lesion_id").set_index("lesion_id")["label"]
    sizes = data.groupby("lesion_id", sort=False).size()
    return pd.DataFrame({"lesion_id": sizes.index, "label": majority.loc[sizes.index].to_numpy(),
                         "n_images": sizes.to_numpy()})


def _rows_of(frame: pd.DataFrame, lesion_ids) -> np.ndarray:
    groups = (frame["lesion_id"] if "lesion_id" in frame.columns else frame["image_id"]).astype(str)
    return np.flatnonzero(groups.isin(set(lesion_ids)).to_numpy())


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(v < 0 for v in values) or not np.isclose(sum(values), 1.0) or values[0] <= 0:
        raise ValueError(f"fractions must be three non-negative numbers (train > 0) summing to 1. Received: fractions={fractions}")
    return values


def train_val_test_split(table_or_frame, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0) -> Split:
    """Lesion-grouped, class-stratified train / val / test row positions (see the module docstring)."""
    fractions = _check_fractions(fractions)
    frame = _frame(table_or_frame)
    lesions = lesion_table(frame)
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(fractions)
    assignment: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    names = ("train", "val", "test")
    for label in sorted(lesions["label"].unique(), key=str):
        group = lesions[lesions["label"] == label]
        group = group.iloc[rng.permutation(len(group))]
        sizes = group["n_images"].to_numpy(dtype=float)
        middle = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
        part = np.searchsorted(bounds, middle, side="right").clip(0, 2)
        # Tiny classes: make sure every non-empty part gets a lesion when there are enough lesions.
        wanted = [i for i in range(3) if fractions[i] > 0]
        if len(group) >= len(wanted):
            for i in wanted:
                if not (part == i).any():
                    donor = np.bincount(part, minlength=3).argmax()
                    part[np.flatnonzero(part == donor)[-1 if i > donor else 0]] = i
        for i, lesion_id in zip(part, group["lesion_id"]):
            assignment[names[i]].append(lesion_id)
    return Split(*(_rows_of(frame, assignment[name]) for name in names))


def fold_assignment(table_or_frame, k: int = 5, seed: int = 0) -> pd.Series:
    """Fold number (0..k-1) of every lesion, indexed by lesion_id."""
    if int(k) != k or k < 2:
        raise ValueError(f"k must be an integer >= 2. Received: k={k}")
    lesions = lesion_table(table_or_frame)
    rng = np.random.default_rng(seed)
    folds = pd.Series(0, index=lesions["lesion_id"], dtype=int)
    for label in sorted(lesions["label"].unique(), key=str):
        group = lesions[lesions["label"] == label]
        group = group.iloc[rng.permutation(len(group))]
        # Largest lesions first (stable, so the shuffle breaks ties), each to the emptiest fold;
        # ties between folds go to a seeded random order so fold 0 is not always favoured.
        group = group.iloc[np.argsort(-group["n_images"].to_numpy(), kind="stable")]
        load = np.zeros(k)
        tie_break = rng.permutation(k)
        for lesion_id, size in zip(group["lesion_id"], group["n_images"]):
            candidates = np.flatnonzero(load == load.min())
            fold = candidates[np.argmin(tie_break[candidates])]
            tie_break = np.roll(tie_break, 1)
            folds[lesion_id] = fold
            load[fold] += size
    return folds


def kfold_splits(table_or_frame, k: int = 5, seed: int = 0, nested_val: bool = True) -> list[Split]:
    """k lesion-grouped, class-stratified folds: for fold i, test = fold i; with `nested_val`,
    val = fold (i + 1) mod k and train = the other k - 2 folds; otherwise val is empty."""
    frame = _frame(table_or_frame)
    folds = fold_assignment(frame, k, seed)
    groups = (frame["lesion_id"] if "lesion_id" in frame.columns else frame["image_id"]).astype(str)
    row_fold = groups.map(folds).to_numpy()
    return [fold_split(row_fold, i, k, nested_val=nested_val) for i in range(k)]


def fold_split(row_fold, i: int, k: int, *, nested_val: bool = True) -> Split:
    """Fold i's `Split` of rows whose folds are `row_fold` (ints 0..k-1): test = fold i; with
    `nested_val`, val = fold (i + 1) mod k and train = the other k - 2 folds (paper 000)."""
    row_fold = np.asarray(row_fold)
    test = np.flatnonzero(row_fold == i)
    if nested_val:
        val = np.flatnonzero(row_fold == (i + 1) % k)
        train = np.flatnonzero((row_fold != i) & (row_fold != (i + 1) % k))
    else:
        val = np.array([], dtype=np.int64)
        train = np.flatnonzero(row_fold != i)
    return Split(train, val, test)


def with_split_column(table: SampleTable, split: Split) -> SampleTable:
    """A copy of `table` whose `split` column says train / val / test per `split` ("" elsewhere)."""
    samples = table.samples.copy()
    column = np.full(len(samples), "", dtype=object)
    for name in ("train", "val", "test"):
        column[getattr(split, name)] = name
    samples["split"] = pd.Series(column, index=samples.index, dtype=str)
    return dataclasses.replace(table, samples=samples)
