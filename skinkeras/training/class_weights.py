"""Class and sample weights against class imbalance (papers 001 and 003).

* "balanced": W_c = N / (C * N_c), paper 001's "new" weights (sklearn's "balanced"); on the full
  HAM10000 counts: akiec 4.37, bcc 2.78, bkl 1.30, df 12.44, mel 1.28, nv 0.21, vasc 10.07
  (the paper's figures are truncated, not rounded: mel is 1.2855, vasc 10.0755).
* "original": W_c = N / N_c, the inverse class share: paper 003's class-balanced weighting CB
  (eq. 7, w = N / N_y), also paper 001's first weights. Not normalised.
* "effective_number": paper 003's ES (eq. 8, Cui et al. 2019), W_c proportional to
  (1 - beta) / (1 - beta^N_c), beta = (N - 1) / N unless given (`train.class_weight_beta`).
  They are scaled so that the weights of the classes present sum to their number, as in Cui et
  al.'s reference code: eq. 8 as printed gives weights of about 1 / N_c (1e-4 .. 1e-2 on HAM10000),
  which would divide the learning rate of SGD by ~1000 and, with Adam's epsilon = 0.1 of paper
  001, stall training. A constant factor changes nothing else: the ratio between any two classes
  is eq. 8's (`effective_number_weights(..., normalise=False)` gives eq. 8 itself).
* "none": all ones.

A class with no training samples gets weight 0: no sample carries it, and an infinite weight would
only poison sums. Weights are NumPy arrays in class-index order; `class_weight_dict` gives the
`{index: weight}` form `keras.Model.fit(class_weight=...)` expects.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

CLASS_WEIGHT_MODES = ("balanced", "original", "effective_number", "none")


def class_counts(labels, num_classes: int) -> np.ndarray:
    """Samples per class from class indices (or one-hot rows)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must be class indices in [0, {num_classes}). "
            f"Received values from {labels.min()} to {labels.max()}."
        )
    return np.bincount(labels, minlength=num_classes)


def _as_counts(counts) -> np.ndarray:
    if isinstance(counts, Mapping):
        counts = list(counts.values())
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0):
        raise ValueError(f"counts must be a non-empty 1-D list of counts >= 0. Received: {counts}")
    if counts.sum() == 0:
        raise ValueError(f"counts must not all be 0. Received: {counts.tolist()}")
    return counts


def class_weights(counts, mode: str = "balanced", *, beta: float | None = None) -> np.ndarray:
    """Per-class weights from per-class training counts (a sequence, or a dict name -> count).

    `beta` is ES's ("effective_number"); None, 0 or negative: paper 003's (N - 1) / N.

    Example:
        >>> class_weights([327, 514, 1099, 115, 1113, 6705, 142]).round(2).tolist()
        [4.38, 2.78, 1.3, 12.44, 1.29, 0.21, 10.08]
    """
    counts = _as_counts(counts)
    present = counts > 0
    total = counts.sum()
    num_classes = counts.size
    weights = np.zeros_like(counts)
    if mode == "balanced":
        weights[present] = total / (num_classes * counts[present])
    elif mode == "original":
        weights[present] = total / counts[present]
    elif mode == "effective_number":
        weights[present] = effective_number_weights(counts[present], beta)
    elif mode == "none":
        weights[:] = 1.0
    else:
        raise ValueError(f"mode must be one of {CLASS_WEIGHT_MODES}. Received: mode={mode!r}")
    return weights


def effective_number_weights(counts, beta: float | None = None, *, normalise: bool = True) -> np.ndarray:
    """ES weights (1 - beta) / (1 - beta^N_c) of classes with N_c >= 1 samples (paper 003, eq. 8);
    `beta` None, 0 or negative: (N - 1) / N. `normalise`: scaled to sum to the number of classes."""
    counts = np.asarray(counts, dtype=np.float64)
    if np.any(counts < 1):
        raise ValueError(f"effective-number weights need counts >= 1. Received: {counts.tolist()}")
    total = counts.sum()
    if beta is None or beta <= 0:
        beta = (total - 1.0) / total
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta must be in (0, 1) (or <= 0 for (N - 1) / N). Received: beta={beta}")
    raw = (1.0 - beta) / (1.0 - beta**counts)
    return raw * counts.size / raw.sum() if normalise else raw


def class_weight_dict(weights: Sequence[float]) -> dict[int, float]:
    """{class index: weight}, the form of `keras.Model.fit(class_weight=...)`."""
    return {index: float(weight) for index, weight in enumerate(weights)}


def sample_weights(labels, weights: Sequence[float]) -> np.ndarray:
    """One weight per sample: the weight of its class (labels as indices or one-hot rows)."""
    weights = np.asarray(weights, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float64) @ weights
    return weights[labels.astype(np.int64)]
