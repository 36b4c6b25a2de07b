"""Comparing any set of models from their predictions files: one metric, BCa intervals, and a paired
permutation test for every pair (paper 000's protocol: 10,000 permutations, alpha 0.05).

The models are compared on the samples they all predicted (each run's own test split, an
external set they were all evaluated on, or the out-of-fold predictions of cross-validation
runs over the same data); a sample missing from one model is left out for all, and counted.

Metrics (`METRICS`): accuracy, balanced_accuracy, macro_auc, specificity_at_sensitivity (a two-class
task's positive class is the last; `target_sensitivity`, 0.98 by default), auc:<class>
(one class vs the rest), and score:<name> (the mean of a per-sample score, e.g. score:jaccard).

Example:
    >>> table = compare_predictions({"a": preds_a, "b": preds_b}, "balanced_accuracy")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Callable

import numpy as np

from skinkeras.errors import SkinkerasError
from skinkeras.evaluation import batched

log = logging.getLogger(__name__)

METRICS = ("balanced_accuracy", "macro_auc", "accuracy", "specificity_at_sensitivity", "auc:<class>", "score:<name>")


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric of predictions: `batched(y, values (P, n, ...)) -> (P,)` for permutations and
    bootstrap resamples; `values` are the probabilities, one class's column, or the scores."""

    name: str
    batched: Callable
    select: Callable  # Predictions -> (labels (n,), values (n, ...))


def get_metric(name: str, *, target_sensitivity: float = 0.98) -> Metric:
    """The metric called `name` (see `METRICS`); an error listing them for an unknown one."""
    if name == "balanced_accuracy":
        return Metric(name, batched.balanced_accuracy_batched, _probabilities)
    if name == "macro_auc":
        return Metric(name, batched.macro_auc_batched, _probabilities)
    if name == "accuracy":
        return Metric(name, batched.accuracy_batched, _probabilities)
    if name == "specificity_at_sensitivity":
        def specificity(y, score):
            return batched.specificity_at_sensitivity_batched(y, score, target_sensitivity)

        return Metric(f"specificity at {target_sensitivity:.0%} sensitivity", specificity, _last_class_vs_rest)
    if name.startswith("auc:"):
        positive = name.split(":", 1)[1]

        def one_class(predictions):
            names = list(predictions.class_names)
            if positive not in names:
                raise SkinkerasError(f"metric {name}: no class {positive!r}; classes: {', '.join(names)}")
            column = names.index(positive)
            return predictions.labels() == column, predictions.probabilities()[:, column]

        return Metric(name, batched.binary_auc_batched, one_class)
    if name.startswith("score:"):
        score = name.split(":", 1)[1]

        def scores(predictions):
            if score not in predictions.score_names:
                raise SkinkerasError(f"metric {name}: no score {score!r}; scores: {', '.join(predictions.score_names)}")
            values = predictions.scores(score)
            return np.zeros(len(values)), values

        return Metric(name, lambda _, values: np.asarray(values, np.float64).mean(axis=-1), scores)
    raise SkinkerasError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")


def _probabilities(predictions):
    return predictions.labels(), predictions.probabilities()


def _last_class_vs_rest(predictions):
    names = predictions.class_names
    if len(names) != 2:
        raise SkinkerasError(f"specificity at a sensitivity is a two-class metric; these predictions have "
                             f"{len(names)} classes ({', '.join(names)}); use auc:<class> for one class vs the rest")
    return predictions.labels() == 1, predictions.probabilities()[:, 1]


def common_samples(systems: dict) -> tuple[dict, int]:
    """Each system's predictions on the samples all of them have (in the first one's order), and
    how many samples were dropped because a system lacks them."""
    names = list(systems)
    shared = set(systems[names[0]].ids)
    for name in names[1:]:
        shared &= set(systems[name].ids)
    if not shared:
        raise SkinkerasError("the models share no predicted sample: were they evaluated on the same data?")
    ids = [i for i in systems[names[0]].ids if i in shared]
    dropped = len(set().union(*(set(p.ids) for p in systems.values()))) - len(ids)
    labels = None
    aligned = {}
    for name, predictions in systems.items():
        aligned[name] = predictions.aligned_to(ids)
        these = aligned[name].frame["y_true"].tolist()
        if labels is not None and these != labels:
            raise SkinkerasError(f"{name}: its true labels differ from the other models' on the same samples")
        labels = these
    return aligned, dropped


def compare_predictions(systems: dict, metric: str = "balanced_accuracy", *, n_permutations: int = 10_000,
                        n_resamples: int = 2_000, target_sensitivity: float = 0.98, alpha: float = 0.05,
                        seed: int = 0) -> dict:
    """The comparison table of `systems` (name -> one model's `Predictions`) on `metric`."""
    from skinkeras.evaluation.bootstrap import bootstrap_ci
    from skinkeras.evaluation.permutation import paired_permutation_test

    if len(systems) < 1:
        raise SkinkerasError("nothing to compare")
    chosen = get_metric(metric, target_sensitivity=target_sensitivity)
    aligned, dropped = common_samples(systems)
    if dropped:
        log.warning("%d samples are not predicted by every model and are left out", dropped)
    data = {name: chosen.select(p) for name, p in aligned.items()}
    rows = []
    for name, (labels, values) in data.items():
        value = float(np.asarray(chosen.batched(labels, np.asarray(values)[None]))[0])
        ci = [None, None]
        if n_resamples:
            result = bootstrap_ci(chosen.batched, labels, values, n_resamples=n_resamples, seed=seed)
            ci = result.as_list()
        rows.append({"model": name, "n": int(len(labels)), "value": value, "ci95": ci})
    pairs = []
    for (a, (labels, values_a)), (b, (_, values_b)) in itertools.combinations(data.items(), 2):
        test = paired_permutation_test(chosen.batched, labels, values_a, values_b, n_permutations, seed=seed)
        pairs.append({"a": a, "b": b, "difference": test.difference, "p_value": test.p_value,
                      "significant": bool(test.p_value < alpha)})
    return {"metric": chosen.name, "n": len(next(iter(aligned.values()))), "samples_left_out": dropped,
            "n_permutations": n_permutations, "n_resamples": n_resamples, "alpha": alpha, "rows": rows,
            "pairs": pairs}


def markdown(result: dict) -> str:
    """The comparison as Markdown: one row per model, then the p-value matrix."""
    from skinkeras.evaluation.formatting import interval, markdown_table, number

    names = [row["model"] for row in result["rows"]]
    lines = [f"# Comparison on {result['metric']} ({result['n']} samples)", ""]
    if result["samples_left_out"]:
        lines += [f"{result['samples_left_out']} samples not predicted by every model were left out.", ""]
    lines += markdown_table(["model", result["metric"], f"95 % CI (BCa, {result['n_resamples']} resamples)"],
                            [(r["model"], number(r["value"]), interval(r["ci95"])) for r in result["rows"]])
    if result["pairs"]:
        p = {(pair["a"], pair["b"]): pair["p_value"] for pair in result["pairs"]}
        p.update({(b, a): value for (a, b), value in list(p.items())})
        lines += ["", f"Paired permutation tests ({result['n_permutations']} permutations), two-sided p-values; "
                  f"* below alpha = {result['alpha']}:", ""]
        matrix = [(a, *("" if a == b else number(p[(a, b)]) + ("*" if p[(a, b)] < result["alpha"] else "")
                        for b in names)) for a in names]
        lines += markdown_table(["", *names], matrix)
    return "\n".join(lines) + "\n"
