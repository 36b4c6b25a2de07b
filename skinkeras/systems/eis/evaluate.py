"""`skinkeras evaluate` of an EIS run: its out-of-fold predictions, then the Table 1 report.

predict: every lesion of the run's dataset was predicted once, by the fold models that never saw it
(cross-validation), so the run's predictions.csv IS its evaluation set; `--split` test / all both
mean it. score: `report.table1` on the evaluated set (`eis.evaluate_on`: all benign lesions plus
the melanomas, as the paper) with BCa intervals and the permutation tests.
"""

from __future__ import annotations

import pandas as pd

from skinkeras.engine.run_directory import as_run
from skinkeras.errors import SkinkerasError
from skinkeras.systems.eis.run_files import EISRun


def predict(run_dir, data_root=None, *, dataset: str | None = None, split: str = "test", **_):
    """The run's out-of-fold predictions of every row (one `Predictions`, model = row id)."""
    from skinkeras.evaluation.predictions import Predictions

    run = EISRun(as_run(run_dir).path)
    if split not in ("test", "all"):
        raise SkinkerasError(f"an EIS run is evaluated on its cross-validation predictions of every lesion: "
                             f"--split test or all. Received: --split {split}")
    if data_root is not None:
        config = run.read_config()
        if str(data_root) != str(config.data.root):
            raise SkinkerasError(
                f"an EIS run is evaluated on the dataset it was cross-validated on ({config.data.root}); "
                f"to score other lesions, use `skinkeras predict {run.path} --csv ...` with its deployed model")
    if not run.predictions.is_file():
        raise SkinkerasError(f"{run.path} has no {run.predictions.name}: the grid has not finished "
                             f"(continue it with skinkeras train --resume --out {run.path})")
    return Predictions.read(run.predictions)


def diagnosis_of(run_dir) -> pd.Series:
    """lesion id -> diagnosis, from the run's folds.csv."""
    run = EISRun(as_run(run_dir).path)
    folds = pd.read_csv(run.lesion_folds, dtype={"lesion_id": str, "diagnosis": str}, keep_default_na=False)
    return folds.set_index("lesion_id")["diagnosis"]


def score(predictions, out_dir, *, run_dir=None, n_resamples: int = 10_000, target_sensitivity: float | None = None,
          seed: int = 0, **_) -> tuple[dict, dict]:
    """Table 1 (Markdown, HTML, JSON), the p-value matrix and the ROC curves into `out_dir`."""
    from skinkeras.systems.eis.report import table1

    if run_dir is None:
        raise SkinkerasError("scoring an EIS grid needs its run directory (the lesions' diagnoses)")
    config = as_run(run_dir).read_config()
    metrics, files = table1(
        predictions, out_dir, evaluate_on=config.eis.evaluate_on, diagnosis=diagnosis_of(run_dir),
        target_sensitivity=config.eis.target_sensitivity, n_resamples=n_resamples,
        n_permutations=config.eis.n_permutations, seed=seed, pretrained=bool(config.model.weights),
    )
    metrics["summary"] = summary_line(metrics)
    return metrics, files


def summary_line(metrics: dict) -> str:
    """One line: the evaluated set and each group's best specificity at the operating point."""
    counts = metrics["counts"]
    best = {}
    for row_id, row in metrics["rows"].items():
        value = row.get("specificity")
        if value is not None and (row["group"] not in best or value > best[row["group"]][1]):
            best[row["group"]] = (row_id, value, row.get("auc"))
    parts = [f"{group} {row_id} {value:.1%}" + (f" (AUC {auc:.3f})" if auc is not None else "")
             for group, (row_id, value, auc) in best.items()]
    return (f"{counts['scored']} lesions ({counts['scored_positive']} positive); best specificity at "
            f"{metrics['target_sensitivity']:.0%} sensitivity per group: " + "; ".join(parts))
