"""Writing an evaluation: `metrics.json`, `report.md` (Markdown tables) and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from skinkeras.evaluation import plots
from skinkeras.evaluation.formatting import dumps, interval, number

REPORT_FILES = {
    "metrics": "metrics.json",
    "report": "report.md",
    "confusion_matrix": "confusion_matrix.png",
    "roc_curves": "roc_curves.png",
    "per_class_bars": "per_class_f1_recall.png",
}


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
        f"| balanced accuracy | {_number(metrics['balanced_accuracy'])} | "
        f"{interval(metrics.get('balanced_accuracy_ci'))} |",
        f"| macro AUC (one vs rest) | {_number(metrics['macro_auc'])} | "
        f"{interval(metrics.get('macro_auc_ci'))} |",
        f"| accuracy | {_number(metrics['accuracy'])} | |",
        f"| macro F1 | {_number(metrics['macro_f1'])} | |",
        f"| mAP | {_number(metrics['map'])} | |",
    ]
    for key, label in (("macro_precision", "macro precision"),
                       ("macro_specificity", "macro specificity")):
        if key in metrics:
            lines.append(f"| {label} | {_number(metrics[key])} | |")
    absent = metrics.get("absent_classes") or []
    if absent:
        lines += ["", f"Classes absent from the labels (left out of every macro mean): "
                      f"{', '.join(absent)}."]
    if metrics.get("notes"):  # what the evaluator wants read with the figures (e.g. inputs it changed)
        lines += ["", "## Notes", ""] + [f"- {note}" for note in metrics["notes"]]
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
            f"| {name} | {row['support']} | {_number(row['precision'])} | {_number(row['recall'])} | "
            f"{_number(row['specificity'])} | {_number(row['f1'])} | {_number(row['auc'])} | "
            f"{_number(row.get('ap'))} |"
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
            f"AUC {_number(task['auc'])} {interval(task.get('auc_ci'))}, AP {_number(task['ap'])}.",
            "",
            "| operating point | threshold | sensitivity | specificity | precision | F1 | accuracy |",
            "|---|---|---|---|---|---|---|",
        ]
        if target.get("threshold") is not None:
            lines.append(
                f"| sensitivity >= {target['target_sensitivity']:g} | "
                f"{_number(target['threshold'], 4)} | {_number(target['sensitivity'])} | "
                f"{_number(target['specificity'])} {interval(task.get('specificity_at_target_ci'))} | "
                f"{_number(target['precision'])} | {_number(target['f1'])} | {_number(target['accuracy'])} |"
            )
        lines.append(
            f"| threshold 0.5 | 0.5 | {_number(at_half['sensitivity'])} | "
            f"{_number(at_half['specificity'])} | {_number(at_half['precision'])} | "
            f"{_number(at_half['f1'])} | {_number(at_half['accuracy'])} |"
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
    paths["metrics"].write_text(dumps(metrics), encoding="utf-8")
    paths["report"].write_text(markdown_report(metrics, title), encoding="utf-8")
    plots.plot_confusion_matrix(metrics["confusion_matrix"], class_names, paths["confusion_matrix"])
    plots.plot_roc_curves(y_true, y_prob, class_names, paths["roc_curves"],
                          per_class=metrics.get("per_class"))
    plots.plot_per_class_bars(metrics["per_class"], class_names, paths["per_class_bars"])
    return paths


def _number(value, digits: int = 3) -> str:
    """Counts stay whole, everything else `digits` decimals ("n/a" when missing)."""
    return number(value, digits, integers=True)
