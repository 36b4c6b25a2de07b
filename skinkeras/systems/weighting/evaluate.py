"""`skinkeras evaluate` of a weighting run: its test predictions, then the Tables 2-5 report.

predict: the grid predicted each split's test images with every row's model of that split
(`train`), so the run's predictions.csv IS its evaluation (`--split test`). score: `report.tables`.
"""

from __future__ import annotations

from skinkeras.engine.run_directory import as_run
from skinkeras.errors import SkinkerasError
from skinkeras.systems.weighting.run_files import WeightingRun


def predict(run_dir, data_root=None, *, dataset: str | None = None, split: str = "test", **_):
    from skinkeras.evaluation.predictions import Predictions

    run = WeightingRun(as_run(run_dir).path)
    if split != "test":
        raise SkinkerasError(f"a weighting run is evaluated on the test parts its grid predicted: --split test. "
                             f"Received: --split {split}")
    if data_root is not None and str(data_root) != str(run.read_config().data.root):
        raise SkinkerasError(f"a weighting run is evaluated on its own dataset ({run.read_config().data.root})")
    if not run.predictions.is_file():
        raise SkinkerasError(f"{run.path} has no {run.predictions.name}: the grid has not finished "
                             f"(continue it with skinkeras train --resume --out {run.path})")
    return Predictions.read(run.predictions)


def score(predictions, out_dir, *, run_dir=None, n_resamples: int = 10_000, seed: int = 0, **_) -> tuple[dict, dict]:
    from skinkeras.systems.weighting.report import tables

    if run_dir is None:
        raise SkinkerasError("scoring a weighting grid needs its run directory")
    config = as_run(run_dir).read_config()
    metrics, files = tables(predictions, out_dir, n_resamples=n_resamples,
                            n_permutations=config.weighting.n_permutations, seed=seed,
                            notes=[f"backbone {config.model.backbone} at {config.data.image_size} px, "
                                   f"weights {config.model.weights or 'random'}; epochs flat "
                                   f"{config.weighting.flat_epochs}, hierarchical {config.weighting.hierarchical_epochs}"])
    metrics["summary"] = summary_line(metrics)
    return metrics, files


def summary_line(metrics: dict) -> str:
    rows = metrics["rows"]
    best = max(rows, key=lambda r: rows[r]["mean"]["balanced_accuracy"])
    return (f"{len(rows)} rows over {metrics['splits']} split(s); best mean BAcc "
            f"{rows[best]['mean']['balanced_accuracy']:.3f} ({best})")
