"""Writing an evaluation: `metrics.json`, `report.md` (Markdown tables) and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from skinkeras.evaluation import plots

REPORT_FILES = {
    "metrics": "metrics.json",
    "report": "report.md",
    "confusion_matrix": "confusion_matrix.png",
    "roc_curves": "roc_curves.png",
    "per_class_bars": "per_class_f1_recall.png",
}


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def _fmt_ci(ci) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Cannot write {type(value).__name__} to metrics.json")


def _clean(value):
    """NaN / inf -> None recursively: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def markdown_report(metrics: dict, title: str = "Evaluation report") -> str:
    """The report as Markdown: overall figures with their intervals, then one row per class."""
    confidence = metrics.get("confidence", 0.95)
    ci_name = f"{confidence:.0%} CI (BCa, {metrics.get('n_resamples', 'n/a')} resamples)"
    lines = [
        f"# {title}",
        "",
        f"{metrics['n']} cases, {len(metrics['class_names'])} classes.",
        "",
        "## Overall",
        "",
        f"| metric | value | {ci_name} |",
        "|---|---|---|",
        f"| balanced accuracy | {_fmt(metrics['balanced_accuracy'])} | "
        f"{_fmt_ci(metrics.get('balanced_accuracy_ci'))} |",
        f"| macro AUC (one vs rest) | {_fmt(metrics['macro_auc'])} | "
        f"{_fmt_ci(metrics.get('macro_auc_ci'))} |",
        f"| accuracy | {_fmt(metrics['accuracy'])} | |",
        f"| macro F1 | {_fmt(metrics['macro_f1'])} | |",
        f"| mAP | {_fmt(metrics['map'])} | |",
    ]
    for key, label in (("macro_precision", "macro precision"),
                       ("macro_specificity", "macro specificity")):
        if key in metrics:
            lines.append(f"| {label} | {_fmt(metrics[key])} | |")
    absent = metrics.get("absent_classes") or []
    if absent:
        lines += ["", f"Classes absent from the labels (left out of every macro mean): "
                      f"{', '.join(absent)}."]
    lines += [
        "",
        "## Per class",
        "",
        "| class | support | precision | recall (sensitivity) | specificity | F1 | AUC | AP |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in metrics["class_names"]:
        row = metrics["per_class"][name]
        lines.append(
            f"| {name} | {row['support']} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | "
            f"{_fmt(row['specificity'])} | {_fmt(row['f1'])} | {_fmt(row['auc'])} | "
            f"{_fmt(row.get('ap'))} |"
        )
    names = metrics["class_names"]
    lines += [
        "",
        "## Confusion matrix (rows: true, columns: predicted)",
        "",
        "| true \\ predicted | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for name, row in zip(names, metrics["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    for name, task in (metrics.get("operating_points") or {}).items():
        target = task["at_target_sensitivity"]
        at_half = task["at_0.5"]
        lines += [
            "",
            f"## {name} vs rest ({task['positives']} positives, {task['negatives']} negatives)",
            "",
            f"AUC {_fmt(task['auc'])} {_fmt_ci(task.get('auc_ci'))}, AP {_fmt(task['ap'])}.",
            "",
            "| operating point | threshold | sensitivity | specificity | precision | F1 | accuracy |",
            "|---|---|---|---|---|---|---|",
        ]
        if target.get("threshold") is not None:
            lines.append(
                f"| sensitivity >= {target['target_sensitivity']:g} | "
                f"{_fmt(target['threshold'], 4)} | {_fmt(target['sensitivity'])} | "
                f"{_fmt(target['specificity'])} {_fmt_ci(task.get('specificity_at_target_ci'))} | "
                f"{_fmt(target['precision'])} | {_fmt(target['f1'])} | {_fmt(target['accuracy'])} |"
            )
        lines.append(
            f"| threshold 0.5 | 0.5 | {_fmt(at_half['sensitivity'])} | "
            f"{_fmt(at_half['specificity'])} | {_fmt(at_half['precision'])} | "
            f"{_fmt(at_half['f1'])} | {_fmt(at_half['accuracy'])} |"
        )
    lines += [
        "",
        "## Plots",
        "",
        f"![confusion matrix]({REPORT_FILES['confusion_matrix']})",
        "",
        f"![ROC curves]({REPORT_FILES['roc_curves']})",
        "",
        f"![per-class F1 and recall]({REPORT_FILES['per_class_bars']})",
        "",
    ]
    return "\n".join(lines)


def write_report(
    metrics: dict,
    out_dir,
    y_true,
    y_prob,
    class_names: Sequence[str],
    *,
    title: str = "Evaluation report",
) -> dict[str, Path]:
    """Write metrics.json, report.md and the three PNGs into out_dir; returns their paths by role.

    Example:
        >>> from skinkeras.evaluation import compute_metrics
        >>> y, p = [0, 1, 1, 0], [[.9, .1], [.2, .8], [.6, .4], [.3, .7]]
        >>> m = compute_metrics(y, p, ["a", "b"], n_resamples=0)
        >>> paths = write_report(m, "/tmp/skinkeras_report_doctest", y, p, ["a", "b"])
        >>> sorted(paths)
        ['confusion_matrix', 'metrics', 'per_class_bars', 'report', 'roc_curves']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    class_names = list(class_names)
    paths = {role: out_dir / name for role, name in REPORT_FILES.items()}
    paths["metrics"].write_text(
        json.dumps(_clean(metrics), indent=2, default=_json_default) + "\n", encoding="utf-8"
    )
    paths["report"].write_text(markdown_report(metrics, title), encoding="utf-8")
    plots.plot_confusion_matrix(metrics["confusion_matrix"], class_names, paths["confusion_matrix"])
    plots.plot_roc_curves(y_true, y_prob, class_names, paths["roc_curves"],
                          per_class=metrics.get("per_class"))
    plots.plot_per_class_bars(metrics["per_class"], class_names, paths["per_class_bars"])
    return paths
