"""Cost of paper 000's statistics: BCa intervals (10,000 resamples) + the permutation matrix (10,000).

Generates a predictions set of about the paper's size (631 benign as the paper, 200 melanoma: the
paper does not state its melanoma count, of 357 malignant lesions;
plus malignant non-melanomas that the evaluated set leaves out) with all 17 Table 1 rows, then
times `stats.row_metrics` for every row (sensitivity / specificity at the 98 %-sensitivity
threshold and AUC, each with its BCa interval) and `stats.permutation_matrix` (136 pairs), and
prints JSON: seconds for the intervals, the permutation matrix, and per row.
With `--run RUN` (a trained `eis` run) it times the statistics on that run's own out-of-fold
predictions instead, and adds the grid's wall time: every cell's training + prediction seconds
(cells/<row>/fold_<k>/selection.json), summed per row, and the run's last session (run.json).

    skinkeras bench eis-stats                 # paper-sized generated predictions
    skinkeras bench eis-stats --run eis_cpu   # a trained grid: its wall time and its statistics' cost
"""

from __future__ import annotations

import json
import time

BENCH_NAME = "eis-stats"


def add_arguments(parser) -> None:
    parser.add_argument("--benign", type=int, default=631, help="benign lesions; default 631")
    parser.add_argument("--melanoma", type=int, default=200, help="melanomas; default 200")
    parser.add_argument("--other-malignant", type=int, default=40,
                        help="malignant non-melanomas (left out of the evaluated set); default 40")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--permutations", type=int, default=10_000, help="permutations per pair")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, resamples and permutations")
    parser.add_argument("--run", default=None, help="a trained eis run: its predictions and its grid's wall time")
    parser.add_argument("--report", default=None,
                        help="also write the whole Table 1 report into this folder and time it")


def synthetic_predictions(benign=631, melanoma=200, other_malignant=40, seed=0):
    """(Predictions of all 17 rows, id -> diagnosis): each row's malignant score is a logistic of a
    shared lesion difficulty plus row noise, better rows (per group order) separating more."""
    import numpy as np

    from skinkeras.evaluation.predictions import Predictions
    from skinkeras.systems.eis.rows import ROWS

    rng = np.random.default_rng(seed)
    n = benign + melanoma + other_malignant
    ids = [f"L{i:05d}" for i in range(n)]
    diagnosis = ["nevus"] * benign + ["melanoma"] * melanoma + ["bcc"] * other_malignant
    malignant = np.r_[np.zeros(benign), np.ones(melanoma + other_malignant)].astype(bool)
    difficulty = rng.normal(size=n)
    parts = []
    for k, row in enumerate(ROWS):
        separation = 0.6 + 0.04 * k
        logit = separation * np.where(malignant, 1.0, -1.0) + 0.6 * difficulty + rng.normal(size=n)
        p = 1.0 / (1.0 + np.exp(-logit))
        parts.append(Predictions.from_probabilities(
            ids=ids, probabilities=np.stack([1 - p, p], axis=1), class_names=("benign", "malignant"),
            y_true=np.where(malignant, "malignant", "benign").tolist(), model=row.id))
    return Predictions.concat(parts), dict(zip(ids, diagnosis))


def stats_cost(predictions, diagnosis=None, *, n_resamples=10_000, n_permutations=10_000, seed=0,
               target_sensitivity=0.98) -> dict:
    """Seconds for the BCa intervals of every row and for the permutation matrix of `predictions`."""
    from skinkeras.systems.eis import stats

    ids, counts, _ = stats.evaluated_ids(predictions, diagnosis)
    positive, scores, _ = stats.aligned_scores(predictions, ids)
    per_row = {}
    start = time.perf_counter()
    for row_id, score in scores.items():
        row_start = time.perf_counter()
        stats.row_metrics(positive, score, target_sensitivity=target_sensitivity, n_resamples=n_resamples,
                          seed=seed)
        per_row[row_id] = round(time.perf_counter() - row_start, 3)
    ci_seconds = time.perf_counter() - start
    start = time.perf_counter()
    tests = stats.permutation_matrix(positive, scores, target_sensitivity=target_sensitivity,
                                     n_permutations=n_permutations, seed=seed)
    permutation_seconds = time.perf_counter() - start
    return {
        "lesions": counts["lesions"], "benign": counts["benign"], "melanoma": counts.get("melanoma"),
        "rows": len(scores), "pairs": len(tests["pairs"]), "n_resamples": n_resamples,
        "n_permutations": n_permutations, "seed": seed,
        "ci_seconds": round(ci_seconds, 3), "permutation_seconds": round(permutation_seconds, 3),
        "total_seconds": round(ci_seconds + permutation_seconds, 3),
        "ci_seconds_per_row": per_row,
        "permutation_seconds_per_pair": round(permutation_seconds / max(len(tests["pairs"]), 1), 4),
    }


def grid_time(run_dir) -> dict:
    """Seconds the grid of `run_dir` spent per row (its cells' selection.json) and in all."""
    from skinkeras.systems.eis.run_files import EISRun

    run = EISRun(run_dir)
    per_row = {}
    for selection in sorted(run.cells.glob("*/fold_*/selection.json")):
        seconds = json.loads(selection.read_text()).get("seconds", 0.0)
        row = selection.parent.parent.name
        per_row[row] = round(per_row.get(row, 0.0) + seconds, 1)
    summary = json.loads(run.summary.read_text()) if run.summary.is_file() else {}
    return {"grid_cell_seconds": round(sum(per_row.values()), 1), "grid_cell_seconds_per_row": per_row,
            "last_session_seconds": summary.get("seconds_this_session")}


def run(args) -> int:
    if args.run:
        from skinkeras.systems.eis.evaluate import diagnosis_of, predict

        predictions, diagnosis = predict(args.run), diagnosis_of(args.run)
    else:
        predictions, diagnosis = synthetic_predictions(args.benign, args.melanoma, args.other_malignant, args.seed)
    result = stats_cost(predictions, diagnosis, n_resamples=args.resamples, n_permutations=args.permutations,
                        seed=args.seed)
    if args.report:
        from skinkeras.systems.eis.report import table1

        start = time.perf_counter()
        table1(predictions, args.report, diagnosis=diagnosis, n_resamples=args.resamples,
               n_permutations=args.permutations, seed=args.seed)
        result["report_seconds"] = round(time.perf_counter() - start, 3)
        result["report"] = str(args.report)
    if args.run:
        result.update(grid_time(args.run), run=str(args.run))
    print(json.dumps(result, indent=2))
    return 0
