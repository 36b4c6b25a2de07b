"""Paired permutation test for the difference of two models' metrics on the same cases (paper 000).

Paper 000 tests whether two models differ in specificity (at 98 % sensitivity) with 10,000
permutations at alpha 0.05. Under the null hypothesis the two models are exchangeable on every case,
so each permutation swaps the two models' predictions on a random half of the cases (each case
independently with probability 1/2) and recomputes metric(A) - metric(B). The two-sided p-value is
(1 + #{|d_perm| >= |d_observed|}) / (1 + n_permutations), which is never 0 and is 1 for identical
models.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

# Elements of one model's permuted predictions per chunk (float64), about 64 MiB.
_CHUNK_ELEMENTS = 1 << 23


@dataclasses.dataclass(frozen=True)
class PermutationResult:
    """observed difference metric(A) - metric(B), its two-sided p-value, and the null spread."""

    difference: float
    p_value: float
    n_permutations: int
    null_std: float


def paired_permutation_test(
    metric: Callable,
    y_true,
    prob_a,
    prob_b,
    n_permutations: int = 10_000,
    seed=None,
    *,
    vectorized: bool = True,
    batch_size: int | None = None,
) -> PermutationResult:
    """Test metric(y_true, prob_a) == metric(y_true, prob_b) by swapping predictions per case.

    Args:
        metric: with `vectorized=True`, `metric(y_true (n,), probs (P, n, ...)) -> (P,)` (e.g.
            `skinkeras.evaluation.batched.balanced_accuracy_batched`); otherwise
            `metric(y_true, probs (n, ...)) -> float`, called once per permutation (slow).
        y_true: labels of the n cases, shared by both models.
        prob_a, prob_b: the two models' predictions on the same cases, shape (n, ...).
        n_permutations: random swaps to draw.
        seed: anything `np.random.default_rng` accepts.

    Example:
        >>> from skinkeras.evaluation.batched import accuracy_batched
        >>> y = np.array([0, 1] * 50)
        >>> good = np.eye(2)[y]
        >>> bad = np.eye(2)[1 - y]
        >>> paired_permutation_test(accuracy_batched, y, good, bad, 1000, seed=0).p_value < 0.01
        True
    """
    y_true = np.asarray(y_true)
    prob_a = np.asarray(prob_a, dtype=np.float64)
    prob_b = np.asarray(prob_b, dtype=np.float64)
    if prob_a.shape != prob_b.shape:
        raise ValueError(
            f"Both models need predictions of the same shape. Received {prob_a.shape} and "
            f"{prob_b.shape}."
        )
    if prob_a.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"Predictions must cover the {y_true.shape[0]} cases of y_true. "
            f"Received {prob_a.shape[0]} rows."
        )
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1. Received: n_permutations={n_permutations}")

    def evaluate(batch_a, batch_b):
        if vectorized:
            return np.asarray(metric(y_true, batch_a), np.float64) - np.asarray(
                metric(y_true, batch_b), np.float64
            )
        return np.array(
            [float(metric(y_true, a)) - float(metric(y_true, b)) for a, b in zip(batch_a, batch_b)]
        )

    observed = float(evaluate(prob_a[None], prob_b[None])[0])
    rng = np.random.default_rng(seed)
    n = prob_a.shape[0]
    case_shape = prob_a.shape[1:]
    rows = batch_size or max(1, _CHUNK_ELEMENTS // max(prob_a.size, 1))
    null = np.empty(n_permutations)
    for start in range(0, n_permutations, rows):
        b = min(rows, n_permutations - start)
        swap = rng.random((b, n)) < 0.5
        swap = swap.reshape(swap.shape + (1,) * len(case_shape))
        null[start : start + b] = evaluate(
            np.where(swap, prob_b, prob_a), np.where(swap, prob_a, prob_b)
        )
    # The tolerance counts permutations equal to the observed difference up to rounding as
    # "at least as extreme" (identical models: every difference is 0 and p must be 1).
    tolerance = 1e-12 * max(1.0, abs(observed))
    extreme = np.sum(np.abs(null) >= abs(observed) - tolerance)
    return PermutationResult(
        difference=observed,
        p_value=float((1 + extreme) / (1 + n_permutations)),
        n_permutations=n_permutations,
        null_std=float(np.std(null)),
    )
