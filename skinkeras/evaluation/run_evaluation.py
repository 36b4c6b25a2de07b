"""Evaluate a trained run on a split of its dataset, or on every image of another root.

`evaluate_run(run_dir, data_root, split="test")` predicts with the run's best model, computes the
metrics (with BCa confidence intervals) and writes metrics.json, report.md and the plots. With
`split="all"` every image under the root is used: the usual case for an external test set, whose
class names must be the run's.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)
SPLITS = ("test", "val", "train", "all")


def load_run_preprocessing(run_dir: Path) -> dict:
    from skinkeras.training.trainer import PREPROCESSING_FILE

    path = Path(run_dir) / PREPROCESSING_FILE
    if not path.exists():
        raise SkinkerasError(f"{run_dir} is not a training run: it has no {PREPROCESSING_FILE}")
    return json.loads(path.read_text())


def evaluation_table(run_dir: Path, data_root, dataset: str | None, split: str):
    """The samples to evaluate: the run's own split of its dataset, or all images of a root."""
    from skinkeras.data.registry import load_dataset
    from skinkeras.experiments.config import load_config
    from skinkeras.training.trainer import read_split

    if split not in SPLITS:
        raise SkinkerasError(f"--split must be one of {', '.join(SPLITS)}. Received: {split!r}")
    config = load_config(Path(run_dir) / "config.json")
    dataset = dataset or config.data.dataset
    table = load_dataset(dataset, data_root)
    for problem in table.problems:
        if problem.excludes:
            log.warning("left out %s: %s %s", problem.image_id, problem.kind, problem.detail)
    if split == "all":
        return table
    by_id = read_split(run_dir)
    if by_id is None:
        raise SkinkerasError(f"{run_dir} has no split.csv; use --split all for an external set")
    wanted = {image_id for image_id, part in by_id.items() if part == split}
    subset = table.subset(table.samples["image_id"].isin(wanted))
    if len(subset) == 0:
        raise SkinkerasError(
            f"none of the run's {split} images were found under {data_root}; "
            "is it the dataset the run was trained on? (use --split all for another dataset)")
    if len(subset) < len(wanted):
        log.warning("%d of the run's %d %s images are missing under %s",
                    len(wanted) - len(subset), len(wanted), split, data_root)
    return subset


def predict_table(model, table, preprocessing: dict, *, batch_size: int = 32, multi_crop: bool = False,
                  color_constancy: bool = False):
    """Class probabilities for every row of `table` (in order) and the true label indices.

    `color_constancy` must be the run's own `data.color_constancy`: the model saw its images that way.
    """
    from skinkeras.data.metadata import MetadataEncoding
    from skinkeras.data.pipeline import make_classification_dataset, make_multicrop_dataset

    size = int(preprocessing["image_size"])
    metadata = MetadataEncoding.from_config(preprocessing["metadata"]) if preprocessing.get("metadata") else None
    if multi_crop:
        # 36 crops (6 x 6 grid, paper 000) of a 1.25x enlarged image, averaged per image.
        big = round(size * 1.25)
        dataset = make_multicrop_dataset(table, crop_size=size, image_size=(big, big), grid=(6, 6),
                                         metadata=metadata, label_mode="index",
                                         color_constancy=color_constancy)
        probs, labels = [], []
        for features, label in dataset:
            probs.append(np.asarray(model.predict_on_batch(features), dtype=np.float64).mean(axis=0))
            labels.append(int(label))
        return np.asarray(labels), np.stack(probs)
    dataset = make_classification_dataset(table, image_size=size, batch_size=batch_size, training=False,
                                          metadata=metadata, label_mode="index",
                                          color_constancy=color_constancy)
    labels = np.concatenate([np.asarray(y) for _, y in dataset])
    with warnings.catch_warnings():
        # Keras cannot know a filtered dataset's length and warns when it ends: expected here.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        probs = model.predict(dataset.map(lambda x, y: x), verbose=0)
    return labels, np.asarray(probs, dtype=np.float64)


def evaluate_run(run_dir, data_root, *, dataset: str | None = None, split: str = "test",
                 out_dir=None, multi_crop: bool = False, n_resamples: int = 10_000,
                 target_sensitivity: float = 0.98, seed: int = 0) -> tuple[dict, dict]:
    """Evaluates the run's best model; returns (metrics, written files)."""
    from skinkeras.evaluation.metrics import compute_metrics
    from skinkeras.evaluation.report import write_report
    from skinkeras.training.trainer import load_run_model

    run_dir = Path(run_dir)
    preprocessing = load_run_preprocessing(run_dir)
    class_names = tuple(preprocessing["class_names"])
    table = evaluation_table(run_dir, data_root, dataset, split)
    if tuple(table.class_names) != class_names:
        raise SkinkerasError(f"the dataset's classes {list(table.class_names)} are not the run's {list(class_names)}")
    model = load_run_model(run_dir)
    # Unreadable files are skipped by the pipeline's own check, so keep labels from the pipeline.
    from skinkeras.experiments.config import load_config

    color_constancy = load_config(run_dir / "config.json").data.color_constancy
    y_true, y_prob = predict_table(model, table, preprocessing, multi_crop=multi_crop,
                                   color_constancy=color_constancy)
    metrics = compute_metrics(y_true, y_prob, class_names, n_resamples=n_resamples,
                              target_sensitivity=target_sensitivity, seed=seed)
    metrics["split"] = split
    metrics["multi_crop"] = multi_crop
    out_dir = Path(out_dir) if out_dir else run_dir / f"evaluation_{split}{'_multicrop' if multi_crop else ''}"
    files = write_report(metrics, out_dir, y_true, y_prob, class_names,
                         title=f"{run_dir.name}: {split} split ({len(y_true)} images)")
    return metrics, files


