"""BCa bootstrap (balanced accuracy, macro AUC): our vectorised version vs scipy.stats.bootstrap.

Synthetic predictions (default 1,000 cases, 7 classes, 10,000 resamples, as in the issue): a
Dirichlet-like softmax whose true-class logit is raised, so the metrics sit in a realistic range.
Ours resamples by case counts (`skinkeras.evaluation.batched`, AUC from scores sorted once);
scipy gets the fastest statistic we have for it: the same vectorised NumPy metric on gathered
resamples (mid-rank AUC per resample), with `batch` set so both bound their memory alike.
With the same seed (the default) both draw the same resamples (scipy 1.17 draws
`rng.integers(0, n, (batch, n))` in order, as we do), so the interval ends agree to rounding and
the timing compares like with like; `--scipy-seed` gives scipy other draws, and the difference is
then Monte-Carlo noise (the acceptance bound is 0.005).
"""

from __future__ import annotations

import json
import time


def add_arguments(parser) -> None:
    parser.add_argument("--n", type=int, default=1000, help="predictions (cases); default 1000")
    parser.add_argument("--classes", type=int, default=7, help="number of classes; default 7")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and resampling")
    parser.add_argument("--scipy-seed", type=int, default=None,
                        help="seed for scipy's resamples; default: the same as --seed")
    parser.add_argument("--scipy-batch", type=int, default=1000,
                        help="scipy.stats.bootstrap batch (resamples per call); default 1000")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def synthetic_predictions(n: int, num_classes: int, seed: int = 0):
    """(y_true (n,), y_prob (n, C)) with imbalanced classes and informative scores."""
    import numpy as np

    rng = np.random.default_rng(seed)
    prior = np.linspace(1.0, 3.0, num_classes) ** 2
    y_true = rng.choice(num_classes, size=n, p=prior / prior.sum())
    logits = rng.normal(size=(n, num_classes))
    logits[np.arange(n), y_true] += 1.5
    y_prob = np.exp(logits)
    return y_true, y_prob / y_prob.sum(axis=1, keepdims=True)


def measure(n=1000, num_classes=7, n_resamples=10_000, seed=0, scipy_batch=1000,
            scipy_seed=None) -> dict:
    import numpy as np
    import scipy.stats

    from skinkeras.evaluation import batched
    from skinkeras.evaluation.bootstrap import bootstrap_ci

    y_true, y_prob = synthetic_predictions(n, num_classes, seed)
    columns = tuple(y_prob.T)

    def scipy_statistic(metric):
        def statistic(labels, *scores, axis=-1):
            return metric(labels, np.stack(scores, axis=-1))

        return statistic

    metrics = {
        "balanced_accuracy": (batched.balanced_accuracy_weighted, batched.balanced_accuracy_batched),
        "macro_auc": (batched.MacroAUCWeighted(), batched.macro_auc_batched),
    }
    results = {
        "n": n, "classes": num_classes, "resamples": n_resamples, "seed": seed,
        "scipy_seed": seed if scipy_seed is None else scipy_seed, "metrics": {},
    }
    for name, (ours_statistic, gathered_statistic) in metrics.items():
        start = time.perf_counter()
        ours = bootstrap_ci(ours_statistic, y_true, y_prob, n_resamples=n_resamples, seed=seed)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        reference = scipy.stats.bootstrap(
            (y_true, *columns), scipy_statistic(gathered_statistic), n_resamples=n_resamples,
            paired=True, vectorized=True, method="BCa", batch=scipy_batch,
            rng=seed if scipy_seed is None else scipy_seed,
        )
        scipy_s = time.perf_counter() - start
        ref = reference.confidence_interval
        results["metrics"][name] = {
            "estimate": ours.estimate,
            "ours_ci": [ours.low, ours.high],
            "scipy_ci": [float(ref.low), float(ref.high)],
            "max_abs_ci_difference": float(max(abs(ours.low - ref.low), abs(ours.high - ref.high))),
            "ours_seconds": ours_s,
            "scipy_seconds": scipy_s,
            "speedup": scipy_s / ours_s if ours_s > 0 else float("inf"),
        }
    return results


def run(args) -> int:
    results = measure(args.n, args.classes, args.resamples, args.seed, args.scipy_batch,
                      args.scipy_seed)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"BCa bootstrap, {results['n']} predictions x {results['resamples']} resamples, "
          f"{results['classes']} classes, seed {results['seed']} (scipy: {results['scipy_seed']})")
    print(f"{'metric':<18} {'estimate':>8} {'ours CI':>17} {'scipy CI':>17} {'max|diff|':>9} "
          f"{'ours s':>7} {'scipy s':>8} {'speedup':>7}")
    for name, row in results["metrics"].items():
        print(
            f"{name:<18} {row['estimate']:8.4f} "
            f"[{row['ours_ci'][0]:.4f}, {row['ours_ci'][1]:.4f}] "
            f"[{row['scipy_ci'][0]:.4f}, {row['scipy_ci'][1]:.4f}] "
            f"{row['max_abs_ci_difference']:9.5f} {row['ours_seconds']:7.2f} "
            f"{row['scipy_seconds']:8.2f} {row['speedup']:6.1f}x"
        )
    return 0
