"""`skinkeras evaluate` of a fusion run: its test predictions, then the Table 1 report.

predict: the grid predicted the test split with every fold model of every row (`train`), so the
run's predictions.csv IS its evaluation (`--split test`). score: `report.table1`.
"""

from __future__ import annotations

import json

import numpy as np

from skinkeras.engine.run_directory import as_run
from skinkeras.errors import SkinkerasError
from skinkeras.systems.fusion.run_files import FusionRun


def predict(run_dir, data_root=None, *, dataset: str | None = None, split: str = "test", **_):
    from skinkeras.evaluation.predictions import Predictions

    run = FusionRun(as_run(run_dir).path)
    if split != "test":
        raise SkinkerasError(f"a fusion run is evaluated on the test split its grid predicted: --split test. "
                             f"Received: --split {split}")
    if data_root is not None and str(data_root) != str(run.read_config().data.root):
        raise SkinkerasError(f"a fusion run is evaluated on its own dataset ({run.read_config().data.root}); to "
                             f"score other cases use `skinkeras predict {run.path} ...` with its deployed model")
    if not run.predictions.is_file():
        raise SkinkerasError(f"{run.path} has no {run.predictions.name}: the grid has not finished "
                             f"(continue it with skinkeras train --resume --out {run.path})")
    return Predictions.read(run.predictions)


def forest_record(run: FusionRun) -> dict | None:
    """The random forest's chosen parameters and feature importances (mean over folds), if it ran."""
    paths = sorted((run.cells / "meta_rf").glob("fold_*/selection.json"))
    if not paths:
        return None
    records = [json.loads(p.read_text()) for p in paths]
    names = list(records[0].get("feature_importances", {}))
    importances = {n: float(np.mean([r["feature_importances"][n] for r in records])) for n in names}
    return {"importances": importances, "summary": "; ".join(r.get("summary", "") for r in records),
            "best_params": [r.get("best_params") for r in records]}


def score(predictions, out_dir, *, run_dir=None, n_resamples: int = 10_000, seed: int = 0, **_) -> tuple[dict, dict]:
    from skinkeras.systems.fusion.report import table1

    if run_dir is None:
        raise SkinkerasError("scoring a fusion grid needs its run directory")
    run = FusionRun(as_run(run_dir).path)
    f = run.read_config().fusion
    notes = []
    if run.cases.is_file():
        cases = json.loads(run.cases.read_text())
        notes.append(f"{cases['cases']} cases, {cases['with_clinical']} with a clinical image; "
                     f"{len(cases['left_out'])} left out (no readable dermoscopic image, unknown label, ...: cases.json)")
    metrics, files = table1(predictions, out_dir, melanoma_class=f.melanoma_class, cancer_classes=tuple(f.cancer_classes),
                            protocol=f.protocol, n_resamples=n_resamples, n_permutations=f.n_permutations, seed=seed,
                            forest=forest_record(run), notes=notes)
    metrics["summary"] = summary_line(metrics)
    return metrics, files


def summary_line(metrics: dict) -> str:
    rows = metrics["rows"]
    best = max((r for r in rows.values() if r["estimate"]["map"] is not None), key=lambda r: r["estimate"]["map"])
    line = f"best mAP {best['estimate']['map']:.3f} ({best['label']}, {best['group']})"
    for test in metrics["permutation"]:
        if test["row"] in ("dsc_macro_meta_emb", "dsc_macro_meta_noemb"):
            head = "with" if test["row"].endswith("_emb") else "without"
            line += (f"; dsc + macro + meta vs dsc ({head} the embedding network): mAP {test['map_row']:.3f} vs "
                     f"{test['map_against']:.3f} (p = {test['p_value']:.4f})")
    return line
