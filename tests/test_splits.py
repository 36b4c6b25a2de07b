"""Lesion-grouped, class-stratified splits: no lesion crosses splits, every class everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinkeras.data import load_dataset
from skinkeras.data.splits import (
    Split,
    fold_assignment,
    kfold_splits,
    lesion_table,
    train_val_test_split,
    with_split_column,
)


def _toy(seed=0, n_lesions=400):
    """A frame shaped like HAM10000: imbalanced classes, 1-4 images per lesion."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(list("abcde"), size=n_lesions, p=[0.6, 0.2, 0.1, 0.06, 0.04])
    rows = []
    for number, label in enumerate(labels):
        for image in range(rng.choice([1, 2, 3, 4], p=[0.6, 0.25, 0.1, 0.05])):
            rows.append({"image_id": f"i{number}_{image}", "lesion_id": f"L{number}", "label": label})
    return pd.DataFrame(rows)


def _check_split(frame, split: Split, fractions, tolerance=0.03):
    parts = {name: frame.iloc[getattr(split, name)] for name in ("train", "val", "test")}
    positions = np.concatenate([split.train, split.val, split.test])
    assert len(positions) == len(frame) and len(np.unique(positions)) == len(frame)  # a partition
    lesions = [set(p["lesion_id"]) for p in parts.values()]
    assert not (lesions[0] & lesions[1]) and not (lesions[0] & lesions[2]) and not (lesions[1] & lesions[2])
    for (name, part), fraction in zip(parts.items(), fractions):
        if fraction:
            assert set(part["label"]) == set(frame["label"]), name
            assert abs(len(part) / len(frame) - fraction) < tolerance, (name, len(part) / len(frame))


def test_train_val_test_split_groups_stratifies_and_hits_fractions():
    frame = _toy()
    split = train_val_test_split(frame, (0.7, 0.15, 0.15), seed=1)
    _check_split(frame, split, (0.7, 0.15, 0.15))
    for label, group in frame.groupby("label"):
        share = np.isin(np.flatnonzero(frame["label"] == label), split.train).mean()
        assert abs(share - 0.7) < 0.12, label  # each class, not just the total


def test_same_seed_same_split_other_seed_other_split():
    frame = _toy()
    a, b, c = (train_val_test_split(frame, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    assert not np.array_equal(a.test, c.test)
    folds_a, folds_b, folds_c = (fold_assignment(frame, 5, seed=s) for s in (3, 3, 4))
    assert folds_a.equals(folds_b) and not folds_a.equals(folds_c)


def test_two_way_split_and_bad_fractions():
    frame = _toy()
    split = train_val_test_split(frame, (0.8, 0.0, 0.2), seed=0)
    assert len(split.val) == 0
    _check_split(frame, split, (0.8, 0.0, 0.2))
    for bad in ((0.5, 0.5), (0.7, 0.2, 0.2), (-0.1, 0.6, 0.5)):
        with pytest.raises(ValueError, match="Received"):
            train_val_test_split(frame, bad)


def test_majority_label_of_a_lesion():
    frame = pd.DataFrame({"image_id": list("pqrstu"), "lesion_id": ["A", "A", "A", "B", "B", "C"],
                          "label": ["x", "y", "y", "y", "x", "x"], "label_index": [0, 1, 1, 1, 0, 0]})
    lesions = lesion_table(frame).set_index("lesion_id")
    assert lesions.loc["A", "label"] == "y" and lesions.loc["A", "n_images"] == 3
    assert lesions.loc["B", "label"] == "x"  # a tie goes to the lower label index


def test_kfold_with_nested_validation():
    frame = _toy(seed=2)
    folds = kfold_splits(frame, k=5, seed=0, nested_val=True)
    assert len(folds) == 5
    tests = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(frame)))  # every image tested exactly once
    for i, fold in enumerate(folds):
        _check_split(frame, fold, (0.6, 0.2, 0.2), tolerance=0.03)
        assert np.array_equal(fold.val, folds[(i + 1) % 5].test)
    plain = kfold_splits(frame, k=4, seed=0, nested_val=False)
    assert all(len(f.val) == 0 and len(f.train) + len(f.test) == len(frame) for f in plain)
    with pytest.raises(ValueError, match="k=1"):
        kfold_splits(frame, k=1)


def test_with_split_column(tmp_path):
    from skinkeras.data.synth import synthesize

    table = load_dataset("ham10000", synthesize("ham10000", tmp_path / "h", n=60, seed=0, image_size="32x24").out_dir)
    split = train_val_test_split(table, seed=0)
    labelled = with_split_column(table, split)
    assert labelled.samples["split"].value_counts().to_dict() == {k: v for k, v in split.sizes().items() if v}
    assert (table.samples["split"] == "").all()  # the original is untouched
    assert labelled.samples.groupby("lesion_id")["split"].nunique().max() == 1


@pytest.mark.real_data
def test_real_ham10000_splits_keep_lesions_together(ham10000_root):
    table = load_dataset("ham10000", ham10000_root)
    frame = table.samples
    _check_split(frame, train_val_test_split(table, seed=0), (0.7, 0.15, 0.15), tolerance=0.02)
    other = train_val_test_split(table, seed=1)
    assert not np.array_equal(train_val_test_split(table, seed=0).test, other.test)
    for fold in kfold_splits(table, k=5, seed=0):
        _check_split(frame, fold, (0.6, 0.2, 0.2), tolerance=0.02)
