"""Evaluating a classification run: its predictions file, then metrics with BCa intervals from it.

`predict(run_dir, data_root, split="test")` predicts with the run's best model on its own split of
its dataset, or with `split="all"` on every image under another root (an external test set holding
some or all of the run's classes: metrics are taken over the classes present), and returns the `Predictions`; `score(predictions, out_dir)`
computes the metrics and writes metrics.json, report.md and the plots.

A run with a decision rule (decision_rule.json, `skinkeras.evaluation.decision_rule`) predicts the
adjusted probabilities, as its predictor and exports do; metrics.json records the rule and the
balanced accuracy of the plain softmax beside it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from skinkeras.engine.run_data import evaluation_table
from skinkeras.engine.run_directory import as_run
from skinkeras.errors import SkinkerasError

log = logging.getLogger(__name__)


def predict_table(model, table, preprocessing: dict, *, batch_size: int = 32, multi_crop: bool = False,
                  color_constancy: bool = False):
    """Class probabilities for every readable row of `table` (in order) and the true label indices.

    `color_constancy` must be the run's own `data.color_constancy`: the model saw its images that way.
    Returns `(labels, probabilities, image_ids)`; unreadable images are skipped by the pipeline.
    """
    from skinkeras.data.metadata import MetadataEncoding
    from skinkeras.data.pipeline import (
        make_classification_dataset,
        make_multicrop_dataset,
    )

    size = int(preprocessing["image_size"])
    metadata = MetadataEncoding.from_config(preprocessing["metadata"]) if preprocessing.get("metadata") else None
    if multi_crop:
        # 36 crops (6 x 6 grid, paper 000) of a 1.25x enlarged image, averaged per image.
        big = round(size * 1.25)
        dataset = make_multicrop_dataset(table, crop_size=size, image_size=(big, big), grid=(6, 6),
                                         metadata=metadata, label_mode="index",
                                         color_constancy=color_constancy, with_ids=True)
        probs, labels, ids = [], [], []
        for features, label, image_id in dataset:
            probs.append(np.asarray(model.predict_on_batch(features), dtype=np.float64).mean(axis=0))
            labels.append(int(label))
            ids.append(image_id.numpy().decode())
        return np.asarray(labels), np.stack(probs), np.asarray(ids)
    dataset = make_classification_dataset(table, image_size=size, batch_size=batch_size, training=False,
                                          metadata=metadata, label_mode="index",
                                          color_constancy=color_constancy, with_ids=True)
    labels = np.concatenate([np.asarray(y) for _, y, _ in dataset])
    ids = np.concatenate([np.asarray(i).astype(str) for _, _, i in dataset])
    with warnings.catch_warnings():
        # Keras cannot know a filtered dataset's length and warns when it ends: expected here.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        probs = model.predict(dataset.map(lambda x, y, i: x), verbose=0)
    return labels, np.asarray(probs, dtype=np.float64), ids


def predict(run_dir, data_root, *, dataset: str | None = None, split: str = "test", multi_crop: bool = False,
            batch_size: int = 32, model=None, fold: int | None = None, **_):
    """The run's best model's predictions on `split` (see the module docstring)."""
    from skinkeras.engine.run_directory import load_run_model
    from skinkeras.evaluation.decision_rule import read_rule
    from skinkeras.evaluation.predictions import Predictions

    run = as_run(run_dir)
    preprocessing = run.read_preprocessing()
    class_names = tuple(preprocessing["class_names"])
    # An external set may hold only some of the run's classes: the others are reported absent.
    table = evaluation_table(run, data_root, dataset, split).with_classes(class_names)
    model = model or load_run_model(run)
    color_constancy = run.read_config().data.color_constancy
    y_true, y_prob, ids = predict_table(model, table, preprocessing, multi_crop=multi_crop, batch_size=batch_size,
                                        color_constancy=color_constancy)
    rule = read_rule(run)
    if rule is not None:
        y_prob = rule.apply(y_prob)
    groups = table.samples.set_index("image_id").loc[ids, "lesion_id"].to_numpy()
    return Predictions.from_probabilities(ids=ids, probabilities=y_prob, class_names=class_names, y_true=y_true,
                                          groups=groups, model=_model_name(run), fold=fold)


def _model_name(run) -> str:
    config = run.read_config()
    return f"{config.model.backbone}/{config.model.head}"


def score(predictions, out_dir, *, run_dir=None, title: str = "", split: str = "test", multi_crop: bool = False,
          n_resamples: int = 10_000, target_sensitivity: float = 0.98, seed: int = 0, extra: dict | None = None,
          **_) -> tuple[dict, dict]:
    """Metrics (with BCa intervals) of one model's predictions; writes metrics.json, report.md and
    the plots into `out_dir`. Returns (metrics, files)."""
    from skinkeras.evaluation.metrics import compute_metrics
    from skinkeras.evaluation.report import write_report

    if len(predictions.models) != 1:
        raise SkinkerasError(f"a classification run has one model; these predictions hold {predictions.models}")
    class_names = predictions.class_names
    y_true, y_prob = predictions.labels(), predictions.probabilities()
    metrics = compute_metrics(y_true, y_prob, class_names, n_resamples=n_resamples,
                              target_sensitivity=target_sensitivity, seed=seed)
    metrics["split"] = split
    metrics["multi_crop"] = multi_crop
    if run_dir is not None:
        metrics.update(decision_rule_metrics(run_dir, y_true, y_prob))
    metrics.update(extra or {})
    metrics["summary"] = summary_line(metrics)
    name = as_run(run_dir).name if run_dir is not None else Path(out_dir).name
    files = write_report(metrics, out_dir, y_true, y_prob, class_names,
                         title=title or f"{name}: {split} split ({len(y_true)} images)")
    return metrics, files


def decision_rule_metrics(run_dir, y_true, y_prob) -> dict:
    """The run's decision rule and the balanced accuracy without it ({} for a run without one).

    The predictions hold the adjusted probabilities; the plain softmax is recovered exactly by the
    inverse adjustment (tau -> -tau), so a reader sees both scores of the same images.
    """
    from skinkeras.evaluation.decision_rule import adjust, balanced_accuracy, per_class_recall, read_rule

    rule = read_rule(run_dir)
    if rule is None:
        return {}
    plain = adjust(y_prob, rule.prior, -rule.tau)
    return {"decision_rule": rule.to_dict(),
            "balanced_accuracy_without_decision_rule": balanced_accuracy(y_true, plain),
            # by class index; the ablation of issue 19 reads melanoma's
            "recall_without_decision_rule": per_class_recall(y_true, plain)}


def summary_line(metrics: dict) -> str:
    """The one line `skinkeras evaluate` prints."""
    from skinkeras.evaluation.formatting import number

    low, high = metrics["balanced_accuracy_ci"]
    auc_low, auc_high = metrics["macro_auc_ci"]
    return (f"{metrics['n']} images: balanced accuracy {number(metrics['balanced_accuracy'])} "
            f"[{number(low)}, {number(high)}], macro AUC {number(metrics['macro_auc'])} "
            f"[{number(auc_low)}, {number(auc_high)}], accuracy {number(metrics['accuracy'])}")
