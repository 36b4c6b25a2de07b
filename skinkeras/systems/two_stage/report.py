"""The two-stage report: one row per model (each member and each ensemble, per variant).

Columns: 3-class accuracy, balanced accuracy and macro AUC; then, for each ISIC 2017 challenge
task (melanoma vs rest, seborrheic keratosis vs rest), AUC and, at the fixed threshold 0.5 on that
class's probability, accuracy, sensitivity, specificity, precision and F1. Writes metrics.json
("table" rows with per-row confidence intervals, "summary"), table.csv, report.md and radar.png.
"""

from __future__ import annotations

from skinkeras.evaluation.formatting import number

TASKS = {"mel": "melanoma", "sk": "seborrheic_keratosis"}
TASK_TITLES = {"mel": "melanoma vs rest", "sk": "seborrheic keratosis vs rest"}
TASK_COLUMNS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1")
COLUMNS = ("variant", "model", "kind", "accuracy", "balanced_accuracy", "macro_auc",
           *(f"{task}_{column}" for task in TASKS for column in TASK_COLUMNS))
RADAR_AXES = (
    ("accuracy", "accuracy"), ("balanced_accuracy", "balanced acc."), ("macro_auc", "macro AUC"),
    ("mel_auc", "MEL AUC"), ("mel_sensitivity", "MEL sens."), ("mel_specificity", "MEL spec."),
    ("sk_auc", "SK AUC"), ("sk_sensitivity", "SK sens."), ("sk_specificity", "SK spec."),
)


def row_metrics(y_true, y_prob, class_names, *, n_resamples: int = 0, target_sensitivity: float = 0.98,
                seed: int = 0) -> tuple[dict, dict]:
    """(the table's columns, the full metrics incl. intervals) for one model's probabilities."""
    from skinkeras.evaluation.metrics import compute_metrics

    full = compute_metrics(y_true, y_prob, class_names, n_resamples=n_resamples, seed=seed,
                           target_sensitivity=target_sensitivity, one_vs_rest=tuple(TASKS.values()))
    row = {key: full[key] for key in ("accuracy", "balanced_accuracy", "macro_auc")}
    for task, class_name in TASKS.items():
        point = full["operating_points"][class_name]
        row[f"{task}_auc"] = point["auc"]
        for column in TASK_COLUMNS[1:]:
            row[f"{task}_{column}"] = point["at_0.5"][column]
    return row, full


def markdown_report(metrics: dict, title: str) -> str:
    """The report: notes, the whole table in Markdown, crop statistics, the radar plot."""
    header = ["variant", "model", "acc", "bal. acc", "macro AUC"] + [
        f"{task.upper()} {name}" for task in TASKS for name in ("AUC", "acc", "sens", "spec", "prec", "F1")]
    lines = [f"# {title}", "", metrics["summary"], ""]
    lines += [f"- {note}" for note in metrics["notes"]]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in metrics["table"]:
        name = row["model"] if row["kind"] == "single" else f"*{row['model']}*"
        values = [row[c] for c in COLUMNS[3:]]
        lines.append("| " + " | ".join([row["variant"], name, *map(number, values)]) + " |")
    lines += ["", "Single models in plain text, ensembles in italics. "
              f"MEL: {TASK_TITLES['mel']}; SK: {TASK_TITLES['sk']}."]
    if metrics.get("crops"):
        lines += ["", "Lesion crops (stage 1): " + ", ".join(f"{k} {v}" for k, v in metrics["crops"].items())]
    lines += ["", "![radar](radar.png)", ""]
    return "\n".join(lines)
